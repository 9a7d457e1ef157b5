"""The whole service with real parts: an RTSP server on loopback, the real detector, real ONNX graphs,
a real SQLite file, uvicorn, and WebSocket clients.

Cameras: ``door`` reads vtest.avi published over RTSP (with credentials in its URL), ``hall`` plays the
file itself in real time. The alert rule is set so that every classified window of a tracked person
alerts (the test model is untrained), which makes events a direct trace of the pipeline's work.

The tests run in file order on one service; the last one restarts it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actwatch.config import AppConfig
from tests.service.live import (
    PROBE_CAMERA,
    LiveService,
    collect,
    door_and_hall_config,
    messages_to_overflow,
    probe_message,
    read_probe_stream,
    wait_for,
)
from tests.support.net import free_port
from tests.support.rtsp import RtspPublisher, RtspServer

pytestmark = pytest.mark.slow

TOKEN = "e2e-test-token-0123456789abcdef"
PASSWORD = "s3cret-pw"


@pytest.fixture(scope="module")
def config(
    tmp_path_factory: pytest.TempPathFactory,
    rtsp: tuple[RtspServer, RtspPublisher],
    vtest_path: Path,
    detector_weights: Path,
    exported_model_dir: Path,
) -> AppConfig:
    server, _ = rtsp
    url = server.url("door", user="admin", password=PASSWORD)
    return door_and_hall_config(
        tmp_path_factory.mktemp("e2e"), url, vtest_path, detector_weights, exported_model_dir, token=TOKEN
    )


@pytest.fixture(scope="module")
def service(config: AppConfig) -> Iterator[LiveService]:
    live = LiveService(config).start()
    try:
        yield live
    finally:
        if live.thread.is_alive():
            live.stop()


def _events(messages: list[dict[str, Any]], camera: str | None = None) -> list[dict[str, Any]]:
    return [m["event"] for m in messages if m["type"] == "event" and camera in (None, m["event"]["camera_id"])]


def _track_ids(messages: list[dict[str, Any]], camera: str) -> set[int]:
    return {t["track_id"] for m in messages if m["type"] == "tracks" and m["camera_id"] == camera for t in m["tracks"]}


def test_websocket_delivers_events_of_tracked_persons_from_both_cameras(service: LiveService) -> None:
    with service.websocket({"tracks": True}) as ws:
        # Restart both cameras once this client listens: each gets a new tracker, whose first track is id 1,
        # so the client sees every camera's ids from the start however late it subscribed.
        for camera in ("door", "hall"):
            for enabled in (False, True):
                service.http.patch(f"/cameras/{camera}", json={"enabled": enabled}).raise_for_status()
        messages = collect(
            ws,
            lambda ms: all(_events(ms, c) and 1 in _track_ids(ms, c) for c in ("door", "hall")),
            timeout=180,
        )
    events = _events(messages)
    for event in events:
        assert event["label"] == "walking"
        assert 0.0 <= event["score"] <= 1.0
        assert len(event["bbox"]) == 4 and event["bbox"][2] > event["bbox"][0]
        assert event["frame_time"] >= event["start_time"] > 0
        assert event["track_id"] >= 1
    # The event's snapshot and its stored copy are there.
    first = events[0]
    snapshot = service.http.get(first["snapshot_url"])
    assert snapshot.status_code == 200 and snapshot.headers["content-type"] == "image/jpeg"
    assert snapshot.content[:2] == b"\xff\xd8"
    assert service.http.get(f"/events/{first['id']}").json()["id"] == first["id"]
    # The pipelined runtime's own counters are on /metrics: the detector and the event writer worked, the
    # queues' drops are counted, and no batch failed.
    assert service.metric("actwatch_pipeline_busy_seconds_total", stage="detect") > 0
    assert service.metric("actwatch_pipeline_busy_seconds_total", stage="writer") > 0
    text = service.http.get("/metrics").text
    assert 'actwatch_pipeline_queue_dropped_total{queue="frames"}' in text
    assert "actwatch_pipeline_failures_total 0.0" in text
    # Each camera has its own ByteTrack id sequence: both start at 1 (a shared class-level counter would
    # hand out one sequence split between the cameras, or reset one camera's ids when the other starts).
    ids = {camera: _track_ids(messages, camera) for camera in ("door", "hall")}
    assert 1 in ids["door"] and 1 in ids["hall"], ids
    # The RTSP password never leaks: not in events, track messages, or the camera list.
    assert PASSWORD not in str(messages)
    cameras = service.http.get("/cameras").text
    assert PASSWORD not in cameras and "admin:***@" in cameras


def test_slow_websocket_client_loses_old_messages_not_the_pipeline(service: LiveService) -> None:
    # Deterministic: a client with a tiny receive buffer that reads nothing, and a known number of
    # messages published through the service's own broadcaster -- more than everything between the
    # broadcaster and that client can hold (tests/service/live.py messages_to_overflow).
    slow = service.raw_websocket({"cameras": [PROBE_CAMERA], "tracks": True})
    try:
        with service.websocket({"tracks": False}) as fast:
            before = service.metric("actwatch_camera_frames_processed_total", camera="hall")
            count = messages_to_overflow(service.config.server, receive_buffer=2048)
            broadcaster = service.app.state.services.broadcaster
            for index in range(count):
                broadcaster.publish(probe_message(index))
            wait_for(
                lambda: service.metric("actwatch_ws_dropped_messages_total") > 0,
                timeout=60,
                what="the server to drop messages for the client that does not read",
            )
            # ...meanwhile the pipeline kept processing and the other client kept getting events.
            wait_for(
                lambda: service.metric("actwatch_camera_frames_processed_total", camera="hall") > before,
                timeout=60,
                what="the pipeline to keep processing while a client does not read",
            )
            collect(fast, lambda ms: len(_events(ms)) >= 1, timeout=60)
        # When the slow client reads again, it is told how many messages it lost, and gets the newest.
        received, dropped = read_probe_stream(slow, last_index=count - 1)
        assert sum(dropped) > 0, "the slow client was never told about dropped messages"
        assert received == sorted(received), "messages came out of order"
        # Every message was delivered or counted as dropped (the pipeline's own messages may add drops).
        assert len(received) + sum(dropped) >= count
    finally:
        slow.close()


def test_unreachable_camera_reconnects_while_others_carry_on(service: LiveService) -> None:
    dead_port = free_port()
    response = service.http.post(
        "/cameras", json={"id": "broken", "url": f"rtsp://admin:{PASSWORD}@127.0.0.1:{dead_port}/nothing"}
    )
    assert response.status_code in (200, 201), response.text
    try:
        status = wait_for(
            lambda: (c := service.camera("broken"))["state"] == "reconnecting" and c["last_error"] and c,
            timeout=60,
            what="camera 'broken' to show reconnecting with an error",
        )
        assert PASSWORD not in str(status)
        before = service.metric("actwatch_camera_frames_processed_total", camera="hall")
        wait_for(
            lambda: service.metric("actwatch_camera_frames_processed_total", camera="hall") > before + 5,
            timeout=60,
            what="camera 'hall' to keep being processed",
        )
    finally:
        assert service.http.delete("/cameras/broken").status_code in (200, 204)
    assert service.http.get("/cameras/broken").status_code == 404


def test_events_resume_after_the_rtsp_publisher_restarts(
    service: LiveService, rtsp: tuple[RtspServer, RtspPublisher]
) -> None:
    _, publisher = rtsp
    publisher.stop()
    down = wait_for(
        lambda: (c := service.camera("door"))["state"] == "reconnecting" and c,
        timeout=60,
        what="camera 'door' to notice the stream stopped",
    )
    assert PASSWORD not in str(down)
    publisher.start()
    restarted = time.time()
    wait_for(lambda: service.camera("door")["state"] == "streaming", timeout=90, what="'door' to stream again")
    assert service.camera("door")["reconnects"] >= 1
    with service.websocket({"cameras": ["door"]}) as ws:
        messages = collect(ws, lambda ms: any(e["frame_time"] > restarted for e in _events(ms, "door")), timeout=180)
    assert all(e["camera_id"] == "door" for e in _events(messages)), "the camera filter was not applied"


def test_a_new_max_fps_reconnects_the_camera_and_its_events_go_on(service: LiveService) -> None:
    response = service.http.patch("/cameras/door", json={"max_fps": 5})
    assert response.status_code == 200 and response.json()["max_fps"] == 5.0, response.text
    changed = time.time()
    try:
        wait_for(lambda: service.camera("door")["state"] == "streaming", timeout=90, what="'door' to stream again")
        with service.websocket({"cameras": ["door"]}) as ws:
            collect(ws, lambda ms: any(e["frame_time"] > changed for e in _events(ms, "door")), timeout=180)
        # its counters start again with the camera (they are the running camera's series)
        wait_for(
            lambda: service.metric("actwatch_camera_frames_processed_total", camera="door") > 0,
            timeout=60,
            what="'door' to count processed frames again",
        )
    finally:
        assert service.http.patch("/cameras/door", json={"max_fps": None}).status_code == 200


def test_stored_events_survive_a_restart(service: LiveService, config: AppConfig) -> None:
    listing = service.http.get("/events", params={"limit": 5}).json()
    assert listing["total"] > 0
    kept = listing["items"][0]["id"]
    service.stop()
    again = LiveService(config.model_copy(update={"cameras": []})).start()
    try:
        after = again.http.get("/events", params={"limit": 5}).json()
        assert after["total"] >= listing["total"]
        assert again.http.get(f"/events/{kept}").status_code == 200
        assert again.http.get(f"/events/{kept}/snapshot").status_code == 200
    finally:
        again.stop()
