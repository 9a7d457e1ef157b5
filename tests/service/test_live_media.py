"""Live frames (latest.jpg, MJPEG), signed media URLs, track boxes per subscription, and event review."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import cv2
import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from actwatch.service.app import create_app
from actwatch.service.events import AlertRecord, Event, FrameOverlay, TrackOverlay
from actwatch.service.live_frames import LiveView
from actwatch.service.signed_urls import MediaSigner
from actwatch.service.store import EventStore

from .conftest import TOKEN, FakeController, LiveServer, auth, frame, make_config, services_of
from .live import wait_for

BOX = (20.0, 30.0, 90.0, 110.0)


def overlay(camera: str = "cam1", t: float = 5.0, label: str | None = "walking") -> FrameOverlay:
    return FrameOverlay(camera, t, (TrackOverlay(7, BOX, 0.9, label, 0.8 if label else None),))


def decode(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def sign(client: TestClient, path: str) -> str:
    response = client.post("/media/sign", json={"path": path}, headers=auth())
    assert response.status_code == 200, response.text
    url: str = response.json()["url"]
    return url


# ----------------------------------------------------------------------------------------- latest.jpg
def test_latest_jpg_is_the_newest_processed_frame_encoded_on_request(client: TestClient) -> None:
    sink = services_of(client.app).sink  # type: ignore[arg-type]
    assert client.get("/cameras/cam1/latest.jpg", headers=auth()).status_code == 404  # nothing processed yet
    assert client.get("/cameras/nope/latest.jpg", headers=auth()).status_code == 404
    assert client.get("/cameras/cam1/latest.jpg").status_code == 401

    dark, bright = np.full((120, 160, 3), 20, np.uint8), np.full((120, 160, 3), 230, np.uint8)
    sink.emit_tracks(overlay(t=1.0), dark)
    sink.emit_tracks(overlay(t=2.0), bright)  # the newest wins
    response = client.get("/cameras/cam1/latest.jpg", headers=auth())
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    assert response.headers["cache-control"] == "no-store"
    plain = decode(response.content)
    assert plain.shape == (120, 160, 3) and abs(float(plain.mean()) - 230) < 3

    drawn = decode(client.get("/cameras/cam1/latest.jpg?overlay=1", headers=auth()).content)
    x1, y1, x2, y2 = (int(v) for v in BOX)
    assert np.abs(drawn[y1 + 20 : y2, x1 - 1 : x1 + 2].astype(int) - 230).max() > 60  # the box's left edge
    assert np.abs(drawn[y1 + 20 : y2 - 10, x1 + 10 : x2 - 10].astype(int) - 230).max() < 30  # inside untouched

    small = decode(client.get("/cameras/cam1/latest.jpg?width=80&overlay=1", headers=auth()).content)
    sink.emit_tracks(overlay(camera="cam2", t=3.0), dark)
    assert client.get("/cameras/cam2/latest.jpg", headers=auth()).status_code == 200
    assert client.patch("/cameras/cam2", json={"enabled": False}, headers=auth()).status_code == 200
    assert client.get("/cameras/cam2/latest.jpg", headers=auth()).status_code == 404  # no stale frame
    assert small.shape == (60, 80, 3)
    assert decode(client.get("/cameras/cam1/latest.jpg?width=999", headers=auth()).content).shape[1] == 160
    assert client.get("/cameras/cam1/latest.jpg?width=2", headers=auth()).status_code == 422


# ---------------------------------------------------------------------------------------- signed URLs
def test_signed_urls_open_one_media_path_for_a_while_without_the_token(client: TestClient) -> None:
    sink = services_of(client.app).sink  # type: ignore[arg-type]
    sink.emit_tracks(overlay(), frame())
    url = sign(client, "/cameras/cam1/latest.jpg")
    query = dict(parse_qsl(urlsplit(url).query))
    assert set(query) == {"expires", "signature"} and TOKEN not in url
    assert client.get(url).status_code == 200  # no Authorization header
    assert client.get(url + "&overlay=1&width=64").status_code == 200  # drawing options are not signed

    other = url.replace("/cameras/cam1/", "/cameras/cam2/")
    assert client.get(other).status_code == 401  # the signature is for cam1 only
    tampered = url[:-2] + ("AA" if not url.endswith("AA") else "BB")
    assert client.get(tampered).status_code == 401
    assert (
        client.get(url.replace(f"expires={query['expires']}", f"expires={int(query['expires']) + 600}")).status_code
        == 401
    )

    assert client.post("/media/sign", json={"path": "/cameras"}, headers=auth()).status_code == 422
    assert client.post("/media/sign", json={"path": "/events"}, headers=auth()).status_code == 422
    assert client.post("/media/sign", json={"path": "/cameras/cam1/latest.jpg/../x"}, headers=auth()).status_code == 422
    assert client.post("/media/sign", json={"path": "/cameras/cam1/latest.jpg"}).status_code == 401
    # a signed URL only reads: the same path and signature do not authorise anything else
    event_url = sign(client, "/events/abc/snapshot")
    assert client.delete(event_url.replace("/snapshot", "")).status_code == 401


def test_signed_urls_expire() -> None:
    now = [1000.0]
    signer = MediaSigner(b"s" * 32, ttl_s=60, clock=lambda: now[0])
    url = signer.sign("/events/ev1/clip")
    query = dict(parse_qsl(urlsplit(url).query))
    assert signer.verify("/events/ev1/clip", query)
    now[0] = 1061.0
    assert not signer.verify("/events/ev1/clip", query)
    assert not MediaSigner(b"t" * 32, clock=lambda: 1000.0).verify("/events/ev1/clip", query)  # another secret
    with pytest.raises(ValueError, match="not a media path"):
        signer.sign("/cameras/cam1")


# ----------------------------------------------------------------------------------------------- MJPEG
def test_mjpeg_streams_new_frames_only_and_streams_are_bounded(tmp_path: Path) -> None:
    app = create_app(make_config(tmp_path, media={"max_streams": 1, "mjpeg_max_fps": 30}), FakeController())
    sink = services_of(app).sink
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        assert http.get("/cameras/cam1/stream.mjpeg", headers=headers).status_code == 404  # no frame yet
        sink.emit_tracks(overlay(t=1.0), np.full((120, 160, 3), 40, np.uint8))
        url = http.post("/media/sign", json={"path": "/cameras/cam1/stream.mjpeg"}, headers=headers).json()["url"]
        with http.stream("GET", url + "&width=80") as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("multipart/x-mixed-replace; boundary=")
            parts = read_parts(stream.iter_bytes())
            first = next(parts)  # the stream runs (and holds its slot) once it has sent a frame
            assert decode(first).shape == (60, 80, 3) and abs(float(decode(first).mean()) - 40) < 3
            assert http.get("/cameras/cam1/stream.mjpeg", headers=headers).status_code == 503  # max_streams: 1
            sink.emit_tracks(overlay(t=2.0), np.full((120, 160, 3), 200, np.uint8))
            second = next(parts)  # sent only once a new frame exists
            assert abs(float(decode(second).mean()) - 200) < 3
        # the stream's slot is free again once the client has gone
        wait_for(lambda: services_of(app).mjpeg_streams.in_use == 0, 60, interval=0.05, what="the stream to end")
        with http.stream("GET", "/cameras/cam1/stream.mjpeg?width=16", headers=headers) as again:
            assert again.status_code == 200


def test_an_open_mjpeg_stream_does_not_hold_up_shutdown(app: object) -> None:
    services = services_of(app)  # type: ignore[arg-type]
    services.sink.emit_tracks(overlay(), frame())
    server = LiveServer(app)  # type: ignore[arg-type]
    with server, httpx.Client(base_url=server.url, timeout=30) as http:
        stream_cm = http.stream("GET", "/cameras/cam1/stream.mjpeg", headers=auth())
        stream = stream_cm.__enter__()
        next(read_parts(stream.iter_bytes()))  # streaming; the client keeps it open through the shutdown
    assert not server.thread.is_alive()  # LiveServer's exit joins the server thread (15 s at most)
    stream_cm.__exit__(None, None, None)


def read_parts(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The JPEG bodies of a multipart/x-mixed-replace stream, one at a time."""
    buffer = b""
    for chunk in chunks:
        buffer += chunk
        while True:
            head_end = buffer.find(b"\r\n\r\n")
            if head_end < 0:
                break
            head = buffer[:head_end].decode("latin-1")
            length = int(
                next(line.split(":", 1)[1] for line in head.split("\r\n") if line.lower().startswith("content-length"))
            )
            body_start = head_end + 4
            if len(buffer) < body_start + length + 2:
                break
            yield buffer[body_start : body_start + length]
            buffer = buffer[body_start + length + 2 :]


# ------------------------------------------------------------------------------ tracks per subscription
def test_track_boxes_are_serialised_only_for_subscribed_clients(client: TestClient) -> None:
    services = services_of(client.app)  # type: ignore[arg-type]
    with client.websocket_connect("/ws/events", headers=auth()) as ws:
        assert ws.receive_json()["type"] == "hello"
        services.sink.emit_tracks(overlay(t=1.0), frame())
        assert services.broadcaster.published == 0  # a client, but none asked for tracks
        assert services.live_frames.latest_jpeg("cam1", LiveView()) is not None  # still kept for latest.jpg
        ws.send_json({"type": "subscribe", "tracks": True})
        assert ws.receive_json()["type"] == "subscribed"
        services.sink.emit_tracks(overlay(t=2.0), frame())
        message = ws.receive_json()
        assert message["type"] == "tracks" and message["tracks"][0]["track_id"] == 7
        assert services.broadcaster.published == 1


# ------------------------------------------------------------------------------------------ review
def _event(event_id: str, t: float, camera: str = "cam1") -> Event:
    return Event(camera, 3, "fighting", 0.9, t - 1, t, (10.0, 20.0, 60.0, 110.0), id=event_id)


def test_events_are_reviewed_filtered_by_review_state_and_deleted(client: TestClient) -> None:
    import time

    services = services_of(client.app)  # type: ignore[arg-type]
    now = time.time()
    for i in range(3):
        services.sink.emit_event(AlertRecord(_event(f"ev{i}", now - i), frame(), np.zeros((2, 8, 8, 3), np.uint8)))
    assert client.get("/events/ev0", headers=auth()).json()["review_state"] == "new"

    answer = client.patch("/events/ev0", json={"review_state": "acknowledged"}, headers=auth())
    assert answer.status_code == 200 and answer.json()["review_state"] == "acknowledged"
    assert client.patch("/events/ev1", json={"review_state": "false_positive"}, headers=auth()).status_code == 200
    ids = lambda state: [e["id"] for e in client.get(f"/events?review_state={state}", headers=auth()).json()["items"]]  # noqa: E731
    assert ids("acknowledged") == ["ev0"] and ids("false_positive") == ["ev1"] and ids("new") == ["ev2"]
    assert client.patch("/events/ev0", json={"review_state": "new"}, headers=auth()).json()["review_state"] == "new"
    assert client.patch("/events/ev0", json={"review_state": "maybe"}, headers=auth()).status_code == 422
    assert client.patch("/events/ev0", json={}, headers=auth()).status_code == 422
    assert client.patch("/events/missing", json={"review_state": "acknowledged"}, headers=auth()).status_code == 404
    assert client.get("/events?review_state=maybe", headers=auth()).status_code == 422
    assert client.patch("/events/ev0", json={"review_state": "acknowledged"}).status_code == 401

    record = services.store.get_record("ev2")
    assert record is not None and record.snapshot_path is not None and record.crops_path is not None
    clip = services.clips.store.path("ev2")
    clip.parent.mkdir(parents=True, exist_ok=True)
    clip.write_bytes(b"not really an mp4")
    assert client.get("/events/ev2", headers=auth()).json()["clip_url"] == "/events/ev2/clip"
    assert client.delete("/events/ev2", headers=auth()).status_code == 204
    assert not record.snapshot_path.exists() and not record.crops_path.exists() and not clip.exists()
    assert client.get("/events/ev2", headers=auth()).status_code == 404
    assert client.delete("/events/ev2", headers=auth()).status_code == 404
    assert client.get("/events", headers=auth()).json()["total"] == 2


def test_an_events_database_from_before_reviews_gets_the_column(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    with sqlite3.connect(db) as conn:  # the table as earlier versions created it
        conn.execute(
            "CREATE TABLE events (id VARCHAR(64) PRIMARY KEY, camera_id VARCHAR(64) NOT NULL,"
            " track_id INTEGER NOT NULL, label VARCHAR(128) NOT NULL, score FLOAT NOT NULL,"
            " start_time FLOAT NOT NULL, frame_time FLOAT NOT NULL, bbox JSON NOT NULL,"
            " snapshot_path VARCHAR(255), crops_path VARCHAR(255), created_at FLOAT NOT NULL)"
        )
        conn.execute(
            "INSERT INTO events VALUES ('old1', 'cam1', 1, 'fall', 0.9, 1.0, 2.0, '[0, 0, 5, 9]', NULL, NULL, 3.0)"
        )
    store = EventStore(f"sqlite:///{db}", tmp_path / "media")
    try:
        record = store.get_record("old1")
        assert record is not None and record.review_state == "new"
        updated = store.set_review("old1", "false_positive")
        assert updated is not None and updated.review_state == "false_positive"
    finally:
        store.close()
