"""The service with its cameras split over two compute processes (``pipeline.processes: 2``), real parts
throughout: an RTSP camera on loopback (with a password in its URL) and a file camera, the real detector,
real ONNX graphs, a real SQLite file, uvicorn, and WebSocket clients.

The tests run in file order on one service; the last one stops it and checks no process is left.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from actwatch.config import AppConfig
from actwatch.errors import ActwatchError
from actwatch.service.messages import TrackInterest
from actwatch.service.predictions import PredictionJob
from actwatch.service.shards import ShardedController
from tests.service.live import LiveService, collect, door_and_hall_config, wait_for
from tests.service.upload_support import CLIP_FRAMES, make_clip, write_clip
from tests.support.browser import chromium, page_problems
from tests.support.rtsp import RtspPublisher, RtspServer

pytestmark = pytest.mark.slow

TOKEN = "shards-test-token-0123456789abcdef"
PASSWORD = "sh4rd-pw"


class _Lines(logging.Handler):
    """The messages logged while it is attached to the root logger."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture(scope="module")
def start_up_log() -> _Lines:
    return _Lines()


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory,
    rtsp: tuple[RtspServer, RtspPublisher],
    vtest_path: Path,
    detector_weights: Path,
    exported_model_dir: Path,
    start_up_log: _Lines,
) -> Iterator[LiveService]:
    server, _ = rtsp
    url = server.url("door", user="admin", password=PASSWORD)
    config = door_and_hall_config(
        tmp_path_factory.mktemp("shards"),
        url,
        vtest_path,
        detector_weights,
        exported_model_dir,
        token=TOKEN,
        processes=2,
    )
    logging.getLogger().addHandler(start_up_log)
    try:
        live = LiveService(config).start()
    finally:
        logging.getLogger().removeHandler(start_up_log)
    try:
        yield live
    finally:
        if live.thread.is_alive():
            live.stop()


@pytest.fixture(scope="module")
def clip(vtest_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(vtest_path, tmp_path_factory)


def _upload(service: LiveService, clip: Path) -> str:
    with clip.open("rb") as f:
        created = service.http.post("/predictions", files={"file": ("people.avi", f, "video/x-msvideo")})
    assert created.status_code == 202, created.text
    job_id: str = created.json()["id"]
    return job_id


def _job(service: LiveService, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = service.http.get(f"/predictions/{job_id}").json()
    return job


def _finished(service: LiveService, job_id: str) -> dict[str, Any] | None:
    job = _job(service, job_id)
    return job if job["state"] in ("done", "failed") else None


def _ended(job: PredictionJob | None) -> PredictionJob | None:
    return job if job is not None and job.finished_at is not None else None


def _controller(service: LiveService) -> ShardedController:
    controller = service.app.state.services.controller
    assert isinstance(controller, ShardedController)
    return controller


def _events(messages: list[dict[str, Any]], camera: str) -> list[dict[str, Any]]:
    return [m["event"] for m in messages if m["type"] == "event" and m["event"]["camera_id"] == camera]


def _tracked(messages: list[dict[str, Any]], camera: str) -> bool:
    return any(m["type"] == "tracks" and m["camera_id"] == camera and m["tracks"] for m in messages)


def _with_error(camera: dict[str, Any], text: str) -> dict[str, Any] | None:
    return camera if text in (camera["last_error"] or "") else None


def _processed(service: LiveService, camera: str) -> float:
    return service.metric("actwatch_camera_frames_processed_total", camera=camera)


def test_a_compute_process_that_cannot_build_its_stages_stops_the_start_with_its_error(
    tmp_path: Path, detector_weights: Path
) -> None:
    from actwatch.service.broadcast import Broadcaster
    from actwatch.service.metrics import ServiceMetrics
    from actwatch.service.sink import EventSink
    from actwatch.service.store import EventStore

    config = AppConfig.model_validate(
        {
            "data_dir": str(tmp_path),
            "detector": {"weights": str(detector_weights), "person_class_ids": [0, 1]},
            "model": {"dir": str(tmp_path / "no-model")},
            "pipeline": {"processes": 2},
        }
    )
    metrics = ServiceMetrics()
    sink = EventSink(EventStore("sqlite://", tmp_path / "media"), Broadcaster(), metrics)
    with pytest.raises(ActwatchError, match="no-model") as raised:
        ShardedController(config, sink, metrics)
    assert "actwatch export" in str(raised.value)  # the model loader's own advice, not a traceback


def test_the_processes_start_up_lines_are_logged_once_each(service: LiveService, start_up_log: _Lines) -> None:
    # both processes load the same untrained model and warn of it in the same words: the service says so once
    untrained = [line for line in start_up_log.lines if "is UNTRAINED" in line]
    assert len(untrained) == 1 and untrained[0].startswith("[compute 0] "), start_up_log.lines


def test_each_camera_runs_in_its_own_process_and_events_reach_the_api(service: LiveService) -> None:
    controller = _controller(service)
    pids = controller.process_ids()
    assert len(set(pids)) == 2 and os.getpid() not in pids
    assert controller.placement() == {"door": 0, "hall": 1}  # the fewest cameras first
    with service.websocket({"tracks": True}) as ws:
        messages = collect(
            ws, lambda ms: all(_events(ms, c) and _tracked(ms, c) for c in ("door", "hall")), timeout=180
        )
    # events come stored, with the snapshot each compute process rendered
    event = _events(messages, "door")[0]
    snapshot = service.http.get(event["snapshot_url"])
    assert snapshot.status_code == 200 and snapshot.content[:2] == b"\xff\xd8"
    assert service.http.get(f"/events/{event['id']}").json()["camera_id"] == "door"
    # /metrics pools both processes: each camera's frames, and the stages' latencies of both
    # (waited for: a process reports every half second, and an event can come before the next report)
    wait_for(
        lambda: _processed(service, "door") > 0 and _processed(service, "hall") > 0,
        timeout=30,
        what="both cameras' processed frames on /metrics",
    )
    assert service.metric("actwatch_pipeline_busy_seconds_total", stage="detect") > 0
    detect = next(s for s in service.http.get("/system").json()["stages"] if s["stage"] == "detect")
    assert detect["count"] > 0 and detect["mean_ms"] > 0
    # the newest frame is asked of the camera's process, which encodes it as asked: only the JPEG crosses
    latest = service.http.get("/cameras/hall/latest.jpg")
    assert latest.status_code == 200 and latest.content[:2] == b"\xff\xd8"
    small = service.http.get("/cameras/hall/latest.jpg", params={"overlay": 1, "width": 320})
    image = cv2.imdecode(np.frombuffer(small.content, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape == (240, 320, 3)  # vtest.avi's 768x576, shrunk there
    with service.http.stream("GET", "/cameras/door/stream.mjpeg", params={"width": 160}) as stream:
        assert stream.status_code == 200
        head = b""
        for chunk in stream.iter_bytes():
            head += chunk
            if b"\xff\xd8" in head:  # the first frame's JPEG has begun
                break
    assert b"Content-Type: image/jpeg" in head
    # no password anywhere the API shows the camera
    assert PASSWORD not in str(messages) and PASSWORD not in service.http.get("/cameras").text
    assert service.http.get("/readyz").status_code == 200
    assert service.metric("actwatch_compute_processes_up") == 2
    assert service.metric("actwatch_compute_process_restarts_total") == 0
    processes = service.http.get("/system").json()["processes"]
    assert [(p["index"], p["pid"], p["state"], p["cameras"], p["restarts"]) for p in processes] == [
        (0, pids[0], "running", ["door"], 0),
        (1, pids[1], "running", ["hall"], 0),
    ]
    assert all(p["providers"]["detector"] == ["CPUExecutionProvider"] for p in processes)
    # each event's hand-off from its compute process is measured (a part of frame-to-event; observed
    # before the event is stored and broadcast, so the two events the clients got were)
    assert service.metric("actwatch_compute_event_handoff_seconds_count") >= 2


def test_a_new_camera_goes_to_the_process_with_fewest_and_can_be_removed(
    service: LiveService, vtest_path: Path
) -> None:
    response = service.http.post("/cameras", json={"id": "yard", "url": str(vtest_path), "loop": True})
    assert response.status_code in (200, 201), response.text
    assert _controller(service).placement()["yard"] == 0  # a tie: the lowest index
    try:
        wait_for(lambda: _processed(service, "yard") > 0, timeout=120, what="'yard' to be processed")
        # a zone change reaches the running camera's process
        zone = [[0, 0], [100, 0], [100, 100]]
        assert service.http.patch("/cameras/yard", json={"zone": zone}).status_code == 200
    finally:
        assert service.http.delete("/cameras/yard").status_code in (200, 204)
    assert service.http.get("/cameras/yard").status_code == 404
    assert sorted(s.camera_id for s in _controller(service).statuses()) == ["door", "hall"]


def test_an_upload_runs_in_a_compute_process_and_the_service_loads_no_model(service: LiveService, clip: Path) -> None:
    controller = _controller(service)
    assert not hasattr(controller, "stages")  # nothing for the service's process to run a job on itself
    system = service.http.get("/system").json()
    assert system["model"]["classes"] and system["model"]["seq_len"] > 0  # described by a compute process
    ready = service.http.get("/readyz").json()
    assert ready["providers"]["detector"] == ["CPUExecutionProvider"], ready
    job_id = _upload(service, clip)
    job = wait_for(lambda: _finished(service, job_id), timeout=300, what="the upload job to finish")
    assert job is not None
    assert job["state"] == "done", job["error"]
    assert job["progress"] == 1.0 and job["video"]["frames"] == CLIP_FRAMES
    assert job["persons"], "vtest.avi's first seconds have people walking"
    video = service.http.get(job["annotated_video_url"])
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4" and len(video.content) > 1000


def test_the_system_page_shows_each_compute_process(service: LiveService, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with chromium(tmp_path / "profile") as driver:
        driver.get(f"http://127.0.0.1:{service.port}/#token={TOKEN}")
        WebDriverWait(driver, 30).until(lambda d: d.find_element(By.ID, "nav").is_displayed())
        driver.get(f"http://127.0.0.1:{service.port}/#/system")
        WebDriverWait(driver, 30).until(lambda d: d.find_element(By.ID, "processes-block").is_displayed())
        text = driver.find_element(By.ID, "processes").text
        pids = _controller(service).process_ids()
        assert f"Process 0\nrunning (pid {pids[0]}); cameras: door; restarts: 0" in text, text
        assert f"Process 1\nrunning (pid {pids[1]}); cameras: hall; restarts: 0" in text, text
        assert page_problems(driver) == []


def test_track_boxes_cross_only_for_the_cameras_a_client_subscribes_to(service: LiveService) -> None:
    controller = _controller(service)
    # nobody connected: every process was told to send no boxes
    wait_for(lambda: controller.track_interest_sent == TrackInterest(), timeout=30, what="no camera's boxes wanted")
    before = _received(service, "tracks")
    frames = {c: _processed(service, c) for c in ("door", "hall")}
    wait_for(
        lambda: all(_processed(service, c) >= frames[c] + 10 for c in frames),
        timeout=120,
        what="10 more frames of each camera",
    )
    # at most one box message per process was on its way when it was told (its pipeline thread had read
    # the old interest): the frames since then sent none
    assert _received(service, "tracks") - before <= len(controller.process_ids())
    with service.websocket({"tracks": True, "cameras": ["hall"]}) as ws:
        wait_for(
            lambda: controller.track_interest_sent == TrackInterest(cameras=frozenset({"hall"})),
            timeout=30,
            what="hall's boxes wanted",
        )
        messages = collect(ws, lambda ms: _tracked(ms, "hall"), timeout=120)
    assert not _tracked(messages, "door")


def _received(service: LiveService, kind: str) -> float:
    return service.metric("actwatch_compute_messages_received_total", kind=kind)


def test_a_killed_compute_process_restarts_with_its_cameras_while_the_other_carries_on(
    service: LiveService, exported_model_dir: Path, vtest_path: Path, tmp_path: Path
) -> None:
    controller = _controller(service)
    # The process that runs the next upload job is killed in the middle of one: the job fails, saying why.
    victim = controller.least_loaded_process()
    assert victim is not None
    camera = next(c for c, index in controller.placement().items() if index == victim)
    survivor = next(c for c, index in controller.placement().items() if index != victim)
    pid = controller.process_ids()[victim]
    assert pid is not None
    long_clip = write_clip(vtest_path, tmp_path / "long.avi", 400)  # minutes of work at half the compute
    job_id = _upload(service, long_clip)
    wait_for(lambda: _job(service, job_id)["progress"] > 0, timeout=120, what="the job's progress to come back")
    # The model's manifest is hidden until the test has seen the camera down: the restart cannot build its
    # stages before then, so the wait below does not race the restart (and the failed restart is tested).
    manifest = exported_model_dir / "manifest.json"
    hidden = manifest.rename(manifest.with_name("manifest.json.hidden"))
    try:
        os.kill(pid, signal.SIGKILL)
        down = wait_for(
            lambda: _with_error(service.camera(camera), "could not restart"),
            timeout=120,
            what=f"'{camera}' to show its process's failed restart",
        )
        assert down is not None and down["state"] == "reconnecting" and "manifest" in down["last_error"], down
        # the other process's camera is not harmed
        before = _processed(service, survivor)
        wait_for(lambda: _processed(service, survivor) > before, timeout=60, what=f"'{survivor}' to go on")
        readiness = service.http.get("/readyz")
        assert readiness.status_code == 503 and any("could not restart" in r for r in readiness.json()["reasons"])
        assert service.metric("actwatch_compute_processes_up") == 1
        shown = service.http.get("/system").json()["processes"][victim]
        assert shown["state"] == "restarting" and "could not restart" in shown["reason"], shown
        failed = wait_for(lambda: _finished(service, job_id), timeout=30, what="the upload job to end")
        assert (
            failed is not None and failed["state"] == "failed" and f"compute process {victim} exited" in failed["error"]
        ), failed
        assert f"code {-signal.SIGKILL}" in failed["error"], failed
    finally:
        hidden.rename(manifest)
    wait_for(lambda: service.camera(camera)["state"] == "streaming", timeout=180, what=f"'{camera}' to stream again")
    assert controller.process_ids()[victim] != pid and controller.restarts() >= 2
    restarted = time.time()
    with service.websocket({"cameras": [camera]}) as ws:
        collect(ws, lambda ms: any(e["frame_time"] > restarted for e in _events(ms, camera)), timeout=180)
    wait_for(lambda: service.http.get("/readyz").status_code == 200, timeout=30, what="ready again")
    assert service.metric("actwatch_compute_processes_up") == 2
    assert service.metric("actwatch_compute_process_restarts_total") == controller.restarts() >= 2


def test_stopping_the_service_stops_every_compute_process(
    service: LiveService, vtest_path: Path, tmp_path: Path
) -> None:
    pids = [p for p in _controller(service).process_ids() if p is not None]
    # an upload job running in a compute process is cancelled, not left running or waited for
    job_id = _upload(service, write_clip(vtest_path, tmp_path / "long.avi", 400))
    wait_for(lambda: _job(service, job_id)["progress"] > 0, timeout=120, what="the job to run")
    predictions = service.app.state.services.predictions
    service.stop()
    job = wait_for(lambda: _ended(predictions.get(job_id)), timeout=30, what="the job to end")
    assert job is not None and job.state.value == "failed" and "service stopped" in (job.error or ""), job
    for pid in pids:
        with pytest.raises(ProcessLookupError):  # reaped: no process left behind
            os.kill(pid, 0)


def test_a_compute_process_whose_service_has_gone_stops_by_itself(
    tmp_path: Path, detector_weights: Path, exported_model_dir: Path
) -> None:
    import multiprocessing
    import queue

    from actwatch.service.shard_messages import Command, Reply, ShardLog, ShardReady
    from actwatch.service.shard_worker import run_shard

    config = AppConfig.model_validate(
        {
            "data_dir": str(tmp_path),
            "detector": {"weights": str(detector_weights), "person_class_ids": [0, 1]},
            "model": {"dir": str(exported_model_dir)},
        }
    )
    context = multiprocessing.get_context("spawn")
    commands: multiprocessing.Queue[Command] = context.Queue(8)
    replies: multiprocessing.Queue[Reply] = context.Queue(64)
    # parent 1: not this process, so the compute process sees its service gone as soon as it is ready
    process = context.Process(target=run_shard, args=(0, config, commands, replies, 20, 1), daemon=True)
    process.start()
    got: list[Reply] = []
    deadline = time.monotonic() + 300
    try:
        while process.is_alive() and time.monotonic() < deadline:
            try:
                got.append(replies.get(timeout=1.0))
            except queue.Empty:
                continue
        process.join(5)
        assert process.exitcode == 0, process.exitcode
    finally:
        if process.is_alive():
            process.kill()
    # it was ready, then stopped by itself with nothing sent to it, saying why
    assert any(isinstance(m, ShardReady) for m in got)
    assert any(isinstance(m, ShardLog) and "service's process has gone" in m.message for m in got), got
