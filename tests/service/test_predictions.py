"""Upload-a-video jobs: ``POST /predictions`` through the live service's own stages (real detector, real
ONNX graphs, real ffmpeg), the limits (413, 415, 422, 429, 503), job states, retention, the compute
share, ``GET /system`` and the offline ``/docs``.

Queue, state and retention tests run the real :class:`PredictionService` with a runner the test holds
at a gate (what it waits for is under its control, never a sleep), and an injected clock.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from actwatch.capture.video_file import probe_video
from actwatch.config import AppConfig, PredictionsConfig
from actwatch.service.app import create_app
from actwatch.service.prediction_run import _LockStepFile, job_stages
from actwatch.service.predictions import (
    ComputeShare,
    JobProgress,
    JobState,
    PredictionJob,
    PredictionOutcome,
    PredictionRefused,
    PredictionService,
)
from actwatch.service.stages import Stages
from tests.conftest import TEST_CLASSES

from .conftest import FakeController, auth, make_config, services_of
from .upload_support import CLIP_FRAMES, make_clip, make_live_stages, real_app, wait_done


@pytest.fixture(scope="module")
def clip(vtest_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(vtest_path, tmp_path_factory)


@pytest.fixture(scope="module")
def live_stages(detector_weights: Path, exported_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Stages:
    return make_live_stages(detector_weights, exported_model_dir, tmp_path_factory)


# ------------------------------------------------------------------------------- the whole job, real
def test_uploaded_clip_runs_through_the_live_stages(
    tmp_path: Path, detector_weights: Path, exported_model_dir: Path, live_stages: Stages, clip: Path
) -> None:
    app = real_app(tmp_path, detector_weights, exported_model_dir, live_stages)
    with TestClient(app) as client:
        with clip.open("rb") as f:
            created = client.post("/predictions", files={"file": ("people.avi", f, "video/x-msvideo")}, headers=auth())
        assert created.status_code == 202, created.text
        job_id = created.json()["id"]
        first = client.get(f"/predictions/{job_id}", headers=auth()).json()
        assert first["state"] in ("queued", "running", "done") and 0 <= first["progress"] <= 1
        wait_done(app)
        job = client.get(f"/predictions/{job_id}", headers=auth()).json()

        assert job["state"] == "done", job["error"]
        assert job["progress"] == 1.0 and job["error"] is None
        assert job["video"]["frames"] == CLIP_FRAMES and job["video"]["duration_s"] == pytest.approx(2.4)
        assert job["persons"], "vtest.avi's first seconds have people walking"
        for person in job["persons"]:
            scores = [p["score"] for p in person["probabilities"]]
            assert [p["label"] for p in person["probabilities"]] != [] and scores == sorted(scores, reverse=True)
            assert sorted(p["label"] for p in person["probabilities"]) == sorted(TEST_CLASSES)
            assert sum(scores) == pytest.approx(1.0, abs=1e-3)  # a mean of softmax rows
            assert person["top_label"] == person["probabilities"][0]["label"]
            assert 0 <= person["start_s"] <= person["end_s"] <= job["video"]["duration_s"]
            assert person["windows"] >= 1
        assert [p["start_s"] for p in job["persons"]] == sorted(p["start_s"] for p in job["persons"])
        # the live metrics are the cameras': the job has its own
        assert (
            services_of(app).metrics.registry.get_sample_value(
                "actwatch_stage_latency_seconds_count", {"stage": "detect"}
            )
            == 0.0
        )
        assert client.get("/predictions", headers=auth()).json()[0]["id"] == job_id

        video = client.get(job["annotated_video_url"], headers=auth())
        assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
        assert video.headers["content-disposition"].startswith("inline")
        saved = tmp_path / "annotated.mp4"
        saved.write_bytes(video.content)
        download = client.get(f"/predictions/{job_id}/video?download=true", headers=auth())
        assert download.headers["content-disposition"] == 'attachment; filename="people-annotated.mp4"'

    stream = json.loads(
        subprocess.run(
            ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=codec_name,pix_fmt,nb_frames",
             "-of", "json", str(saved)],
            capture_output=True, text=True, check=True,
        ).stdout
    )["streams"][0]  # fmt: skip
    assert stream == {"codec_name": "h264", "pix_fmt": "yuv420p", "nb_frames": str(CLIP_FRAMES)}
    assert not (tmp_path / "data" / "predictions" / job_id / "upload.avi").exists()  # not kept once run


def test_job_stages_share_the_loaded_detector_and_model(live_stages: Stages, clip: Path) -> None:
    stages = job_stages(live_stages, AppConfig().pipeline, _LockStepFile("upload-x", clip))
    assert stages.detector is live_stages.detector and stages.tracker_factory is live_stages.tracker_factory
    assert stages.runtime._runtime is live_stages.runtime  # type: ignore[attr-defined]  # wrapped, not loaded again
    assert stages.buffers is not live_stages.buffers and stages.alerts is not live_stages.alerts
    assert stages.metrics is not live_stages.metrics and stages.sink is not live_stages.sink


def test_system_describes_model_providers_and_stages(
    tmp_path: Path, detector_weights: Path, exported_model_dir: Path
) -> None:
    app = real_app(tmp_path, detector_weights, exported_model_dir, None)  # the serve wiring: one metrics
    with TestClient(app) as client:
        system = client.get("/system", headers=auth()).json()
        assert client.get("/system").status_code == 401
    assert system["model"]["classes"] == TEST_CLASSES
    assert system["model"]["seq_len"] == 8 and system["model"]["input_size"] == [64, 64]
    assert system["model"]["arch"] and system["model"]["feature_cache"] is True
    # the test model is an untrained checkpoint on a random backbone: the page must say so
    assert system["model"]["trained"] is False and system["model"]["backbone"] == "random"
    assert "CPUExecutionProvider" in system["providers"]["detector"] + system["providers"]["model"]
    assert [s["stage"] for s in system["stages"]] == ["detect", "track", "encode", "classify"]
    assert system["uploads"]["available"] is True and system["stride"] == 2
    assert system["processes"] is None  # one process runs everything
    # the pipelined runtime's load since it started: each stage's share of the time, its queues' drops
    load = system["pipeline"]
    assert set(load["occupancy"]) == {"intake", "detect", "track", "action", "alert", "writer"}
    assert all(0.0 <= share <= 1.0 for share in load["occupancy"].values())
    assert set(load["queue_drops"]) == {"frames", "detected", "tracked", "classified"}
    assert load["failures"] == 0 and load["stale_frames"] >= 0 and load["frame_wait_s"] >= 0.0


# --------------------------------------------------------------------------------------------- limits
def test_limits_are_refused_with_what_the_limit_is(
    tmp_path: Path, detector_weights: Path, exported_model_dir: Path, live_stages: Stages, clip: Path
) -> None:
    app = real_app(tmp_path, detector_weights, exported_model_dir, live_stages, max_upload_mb=5, max_duration_s=1.0)
    big = tmp_path / "big.avi"
    big.write_bytes(b"\0" * 6 * 1024 * 1024)
    not_video = tmp_path / "notes.mp4"
    not_video.write_bytes(b"these are not video frames " * 100)
    with TestClient(app) as client:

        def post(path: Path, name: str) -> Any:
            with path.open("rb") as f:
                return client.post(
                    "/predictions", files={"file": (name, f, "application/octet-stream")}, headers=auth()
                )

        too_large = post(big, "big.avi")
        assert too_large.status_code == 413
        assert "larger than 5 MiB" in too_large.json()["detail"]
        assert clip.stat().st_size < 5 * 1024 * 1024
        wrong_type = post(clip, "people.txt")
        assert wrong_type.status_code == 415
        assert "'.txt' is not an accepted video type" in wrong_type.json()["detail"] and ".mp4" in wrong_type.text
        unreadable = post(not_video, "notes.mp4")
        assert unreadable.status_code == 422
        assert "not a video" in unreadable.json()["detail"][0]["msg"]
        too_long = post(clip, "people.avi")
        assert too_long.status_code == 422
        assert too_long.json()["detail"][0]["msg"].startswith("the video is 2.4 s long; at most 1 s is accepted")
        for data in ({}, {"file": "hello"}):  # no file field, or a text field in its place
            missing = client.post("/predictions", data=data, headers=auth())
            assert missing.status_code == 422 and "curl -F file=@clip.mp4" in missing.json()["detail"][0]["msg"]
        assert client.get("/predictions", headers=auth()).json() == []  # nothing refused was kept
    assert list((tmp_path / "data" / "predictions").iterdir()) == []


def test_uploads_need_the_pipeline(tmp_path: Path, controller: FakeController, clip: Path) -> None:
    app = create_app(make_config(tmp_path), controller)
    with TestClient(app) as client, clip.open("rb") as f:
        answer = client.post("/predictions", files={"file": ("people.avi", f, "video/x-msvideo")}, headers=auth())
        assert answer.status_code == 503 and "compute pipeline" in answer.json()["detail"]
        assert client.get("/predictions/limits", headers=auth()).json()["available"] is False
        system = client.get("/system", headers=auth()).json()
        assert system["model"] is None and system["pipeline"] is None  # no pipeline runs: no load to show
        missing = client.get("/predictions/" + "0" * 32, headers=auth())
        assert missing.status_code == 404


# ------------------------------------------------------------------------- queue, states, retention
class GatedRunner:
    """Runs jobs only when the test opens their gate; remembers the order it ran them in."""

    def __init__(self) -> None:
        self.gates: dict[str, threading.Event] = {}
        self.started: list[str] = []
        self.running = threading.Condition()

    def gate(self, job_id: str) -> threading.Event:
        return self.gates.setdefault(job_id, threading.Event())

    def __call__(self, job: PredictionJob, progress: JobProgress) -> PredictionOutcome:
        with self.running:
            self.started.append(job.id)
            self.running.notify_all()
        progress.on_progress(0.5)
        assert self.gate(job.id).wait(60), "the test never opened the gate"
        if job.filename.startswith("bad"):
            raise PredictionRefused(422, "the decoder gave up half-way")
        return PredictionOutcome((), 0, job.probe.frames, job.probe.duration_s, 0.0)

    def wait_started(self, count: int) -> None:
        with self.running:
            assert self.running.wait_for(lambda: len(self.started) >= count, 60)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def gated(tmp_path: Path) -> Iterator[tuple[PredictionService, GatedRunner, Clock]]:
    runner, clock = GatedRunner(), Clock()
    service = PredictionService(
        PredictionsConfig(max_jobs=2, retention_s=600), tmp_path / "predictions", runner, clock=clock
    )
    service.start()
    yield service, runner, clock
    for gate in runner.gates.values():
        gate.set()
    service.stop()


def submit(service: PredictionService, clip: Path, name: str = "people.avi") -> PredictionJob:
    with clip.open("rb") as f:
        return service.create(f, name)


def test_states_queue_limit_and_order(gated: tuple[PredictionService, GatedRunner, Clock], clip: Path) -> None:
    service, runner, clock = gated
    first = submit(service, clip)
    runner.wait_started(1)
    clock.now += 1
    second = submit(service, clip, "bad.avi")
    assert (first.state, first.progress, second.state) == (JobState.RUNNING, 0.5, JobState.QUEUED)
    with pytest.raises(PredictionRefused) as refused:
        submit(service, clip)
    assert refused.value.status_code == 429 and "2 video jobs are already queued or running" in refused.value.message
    runner.gate(first.id).set()
    runner.wait_started(2)
    assert service.get(first.id).state is JobState.DONE  # type: ignore[union-attr]
    assert runner.started == [first.id, second.id]  # oldest first
    clock.now += 1
    third = submit(service, clip)  # a slot is free again
    runner.gate(second.id).set()
    runner.gate(third.id).set()
    assert service.wait_idle(60)
    failed = service.get(second.id)
    assert failed is not None and failed.state is JobState.FAILED and failed.error == "the decoder gave up half-way"
    assert [j.id for j in service.jobs()] == [third.id, second.id, first.id]  # newest first


def test_http_429_when_the_queue_is_full(tmp_path: Path, controller: FakeController, clip: Path) -> None:
    app = create_app(make_config(tmp_path), controller)
    runner = GatedRunner()
    services_of(app).predictions = PredictionService(PredictionsConfig(max_jobs=1), tmp_path / "predictions", runner)
    with TestClient(app) as client:
        with clip.open("rb") as f:
            first = client.post("/predictions", files={"file": ("a.avi", f, "video/x-msvideo")}, headers=auth())
        runner.wait_started(1)
        state = client.get(f"/predictions/{first.json()['id']}", headers=auth()).json()
        assert (state["state"], state["progress"], state["persons"]) == ("running", 0.5, [])
        assert client.get(f"/predictions/{first.json()['id']}/video", headers=auth()).status_code == 409
        with clip.open("rb") as f:
            second = client.post("/predictions", files={"file": ("b.avi", f, "video/x-msvideo")}, headers=auth())
        assert second.status_code == 429
        assert second.json()["detail"].startswith("1 video jobs are already queued or running (predictions.max_jobs)")
        runner.gate(first.json()["id"]).set()


def test_finished_jobs_are_deleted_after_the_retention(
    gated: tuple[PredictionService, GatedRunner, Clock], clip: Path
) -> None:
    service, runner, clock = gated
    job = submit(service, clip)
    runner.gate(job.id).set()
    assert service.wait_idle(60)
    assert job.folder.is_dir()
    clock.now += 599
    assert service.get(job.id) is job
    clock.now += 1
    assert service.get(job.id) is None and not job.folder.exists()


def test_a_job_computes_at_most_its_share(tmp_path: Path) -> None:
    stop = threading.Event()
    share = ComputeShare(0.25, stop)
    assert share.pause_for(0.1) == pytest.approx(0.3)
    assert ComputeShare(1.0, stop).pause_for(5.0) == 0.0
    started = time.monotonic()
    share.pace(0.02)  # 0.06 s of pause: the job's thread sleeps at least that
    assert time.monotonic() - started >= 0.06
    stop.set()
    started = time.monotonic()
    share.pace(1000.0)  # a stopping service is not held up
    assert time.monotonic() - started < 1000


def test_the_service_stop_fails_running_jobs(tmp_path: Path, clip: Path) -> None:
    runner = GatedRunner()
    service = PredictionService(PredictionsConfig(), tmp_path / "predictions", runner)
    service.start()
    job = submit(service, clip)
    runner.wait_started(1)
    queued = submit(service, clip)
    stopper = threading.Thread(target=service.stop)
    stopper.start()
    runner.gate(job.id).set()  # the runner returns; the queued job never starts
    stopper.join(30)
    assert queued.state is JobState.FAILED and queued.error == "the service stopped before the job finished"


def test_probe_reads_the_clip(clip: Path) -> None:
    probe = probe_video(clip)
    assert (probe.frames, probe.fps, probe.width, probe.height) == (CLIP_FRAMES, 10.0, 768, 576)


# ---------------------------------------------------------------------------------------- /docs
def test_docs_are_served_from_the_package(app: FastAPI, client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    assert "<script>" not in page.text and "cdn" not in page.text.lower() and "https://" not in page.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "LICENSE", "VERSION"):
        assert client.get(f"/static/vendor/swagger-ui/{asset}").status_code == 200, asset
    assert client.get("/static/vendor/swagger-ui/VERSION").text.startswith("swagger-ui-dist 5.")
    assert client.get("/static/docs/swagger-init.js").status_code == 200
    assert client.get("/redoc").status_code == 401  # no CDN page any more: an unknown path needs the token


def test_an_upload_is_counted_while_it_is_written(tmp_path: Path, clip: Path) -> None:
    """Bodies without Content-Length (chunked) reach the service: the copy to disk stops at the limit."""
    assert clip.stat().st_size > 512 * 1024
    service = PredictionService(PredictionsConfig(max_upload_mb=0.5), tmp_path / "predictions", GatedRunner())
    with pytest.raises(PredictionRefused) as refused:
        submit(service, clip)
    assert refused.value.status_code == 413 and "larger than 0.5 MiB" in refused.value.message
    assert list((tmp_path / "predictions").iterdir()) == [] and service.jobs() == []
    assert service.wait_idle(timeout=0)  # the slot the refused upload held is free again
