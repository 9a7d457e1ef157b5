"""WS /ws/events: authentication, hello, subscriptions, errors that keep the connection open."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from actwatch.service.app import create_app
from actwatch.service.events import AlertRecord, Event, FrameOverlay, TrackOverlay
from actwatch.service.server import WS_MAX_FRAME_BYTES

from .conftest import TOKEN, FakeController, LiveServer, frame, make_config, services_of
from .live import (
    OP_BINARY,
    OP_TEXT,
    PROBE_CAMERA,
    RawWebSocket,
    messages_to_overflow,
    probe_message,
    read_probe_stream,
    wait_for,
)


def emit(app: FastAPI, n: int, camera: str = "cam1", label: str = "fighting") -> Event:
    event = Event(camera, n, label, 0.9, 1.0, 2.0, (1.0, 2.0, 30.0, 60.0), id=f"ws{n:04d}")
    services_of(app).sink.emit_event(AlertRecord(event, frame(), None))
    return event


def test_hello_with_query_token(client: TestClient) -> None:
    with client.websocket_connect(f"/ws/events?token={TOKEN}") as ws:
        hello = ws.receive_json()
        assert hello["type"] == "hello" and hello["cameras"] == ["cam1", "cam2"]
        assert hello["subscription"] == {"cameras": None, "labels": None, "tracks": False}


def test_header_and_first_message_auth(client: TestClient) -> None:
    with client.websocket_connect("/ws/events", headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
        assert ws.receive_json()["type"] == "hello"
    with client.websocket_connect("/ws/events") as ws:
        ws.send_json({"type": "auth", "token": TOKEN})
        assert ws.receive_json()["type"] == "hello"


@pytest.mark.parametrize(
    ("path", "headers", "first"),
    [
        ("/ws/events?token=wrong-wrong-wrong-wrong", {}, None),
        ("/ws/events", {"Authorization": "Bearer wrong-wrong-wrong"}, None),
        ("/ws/events", {}, {"type": "auth", "token": "wrong"}),
        ("/ws/events", {}, {"type": "subscribe"}),
        ("/ws/events", {}, "not json at all"),
    ],
)
def test_bad_token_closes_with_1008(client: TestClient, path: str, headers: dict[str, str], first: object) -> None:
    with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect(path, headers=headers) as ws:
        if isinstance(first, dict):
            ws.send_json(first)
        elif first is not None:
            ws.send_text(str(first))
        ws.receive_json()
    assert info.value.code == 1008


def test_malformed_messages_get_errors_and_the_connection_stays(client: TestClient) -> None:
    with client.websocket_connect(f"/ws/events?token={TOKEN}") as ws:
        ws.receive_json()  # hello
        ws.send_text("{broken")
        error = ws.receive_json()
        assert error["type"] == "error" and "malformed JSON" in error["message"]
        ws.send_json({"type": "dance"})
        assert "unknown message type 'dance'" in ws.receive_json()["message"]
        ws.send_json(["subscribe"])
        assert ws.receive_json()["type"] == "error"
        ws.send_json({"type": "subscribe", "cameras": "cam1"})
        error = ws.receive_json()
        assert error["type"] == "error" and "cameras" in error["message"]
        ws.send_json({"type": "subscribe", "cameras": ["Not A Slug"]})
        assert ws.receive_json()["type"] == "error"
        ws.send_bytes(b"\x00\x01")
        assert "binary" in ws.receive_json()["message"]
        ws.send_text("x" * 70_000)
        assert "too long" in ws.receive_json()["message"]
        ws.send_json({"type": "ping"})
        assert ws.receive_json() == {"type": "pong"}  # still open and answering


def test_subscription_filter(app: FastAPI, client: TestClient) -> None:
    with (
        client.websocket_connect(f"/ws/events?token={TOKEN}") as everything,
        client.websocket_connect(f"/ws/events?token={TOKEN}") as filtered,
    ):
        everything.receive_json()
        filtered.receive_json()
        filtered.send_json({"type": "subscribe", "cameras": ["cam2"], "labels": ["falling"], "tracks": True})
        assert filtered.receive_json() == {
            "type": "subscribed",
            "cameras": ["cam2"],
            "labels": ["falling"],
            "tracks": True,
        }
        sink = services_of(app).sink
        emit(app, 1, "cam1", "falling")  # wrong camera
        emit(app, 2, "cam2", "fighting")  # wrong label
        sink.emit_tracks(FrameOverlay("cam1", 5.0, (TrackOverlay(1, (0.0, 0.0, 1.0, 1.0), 0.9),)))  # wrong camera
        sink.emit_tracks(FrameOverlay("cam2", 6.0, (TrackOverlay(4, (1.0, 2.0, 3.0, 4.0), 0.8, "falling", 0.7),)))
        wanted = emit(app, 3, "cam2", "falling")
        msg = filtered.receive_json()
        assert msg["type"] == "tracks" and msg["camera_id"] == "cam2"
        assert msg["tracks"] == [
            {
                "track_id": 4,
                "bbox": [1.0, 2.0, 3.0, 4.0],
                "confidence": 0.8,
                "label": "falling",
                "score": 0.7,
                "static": False,
            }
        ]
        msg = filtered.receive_json()
        assert msg["type"] == "event" and msg["event"]["id"] == wanted.id
        # the unfiltered client got all three events and no tracks
        got = [everything.receive_json() for _ in range(3)]
        assert [m["event"]["id"] for m in got] == ["ws0001", "ws0002", "ws0003"]
        assert {m["type"] for m in got} == {"event"}
        # the event message carries the same data as GET /events/{id}
        rest = client.get(f"/events/{wanted.id}", headers={"Authorization": f"Bearer {TOKEN}"}).json()
        assert msg["event"] == rest


def test_real_server_websocket(app: FastAPI) -> None:
    """Over a real socket: close code 1008 as a client library sees it, and live delivery from a thread."""

    async def scenario(url: str) -> None:
        async with websockets.connect(url + "/ws/events?token=wrong-token-xxxxxxxx") as ws:
            with pytest.raises(websockets.ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1008
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with websockets.connect(url + "/ws/events", additional_headers=headers) as ws:
            assert json.loads(await ws.recv())["type"] == "hello"
            # the pipeline thread's role: publish from another thread while the server loop runs
            await asyncio.to_thread(emit, app, 7)
            msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert msg["type"] == "event" and msg["event"]["id"] == "ws0007"

    with LiveServer(app) as server:
        asyncio.run(scenario(server.url.replace("http", "ws")))


# --------------------------------------------------------------- the real server, as `actwatch serve` runs it
def _live_app(tmp_path: Path, **server: object) -> FastAPI:
    settings = {"token": TOKEN, "auth_failures_per_minute": 10_000, **server}
    return create_app(make_config(tmp_path, server=settings), FakeController())


def test_slow_reader_is_told_what_it_missed_and_unanswered_pings_never_close_it(tmp_path: Path) -> None:
    """The slow-client contract on the served settings: the client's own queue drops the oldest messages and
    says how many; keepalive pings it never answers do not close it (uvicorn's defaults closed it with 1011).

    Deterministic: the client's receive buffer is fixed before connecting, it reads nothing while a known
    number of messages -- more than every buffer on the way can hold -- is published through the
    broadcaster, and the test waits for conditions only."""
    app = _live_app(tmp_path, ws_queue_size=8, ws_ping_interval_s=0.05, send_buffer_bytes=4096)
    services = services_of(app)
    with LiveServer(app) as server:
        slow = RawWebSocket(server.port, TOKEN, receive_buffer=2048)
        try:
            slow.subscribe({"cameras": [PROBE_CAMERA], "tracks": True})
            count = messages_to_overflow(services.config.server, receive_buffer=2048)
            for index in range(count):
                services.broadcaster.publish(probe_message(index))
            wait_for(lambda: services.broadcaster.dropped_total > 0, 60, 0.02, "messages dropped for the client")
            received, dropped = read_probe_stream(slow, last_index=count - 1)
            assert sum(dropped) > 0 and len(received) + sum(dropped) == count  # each delivered or counted
            assert received == sorted(received) and received[-8:] == list(range(count - 8, count))
            while slow.pings < 3:  # never answered: any ping timeout would close the connection here
                slow.send_json({"type": "ping"})
                assert slow.recv_json() == {"type": "pong"}
            slow.send_json({"type": "ping"})
            assert slow.recv_json() == {"type": "pong"}
        finally:
            slow.close()


def test_a_client_that_reads_nothing_is_disconnected_after_the_dead_peer_timeout(tmp_path: Path) -> None:
    # A vanished peer and one that keeps its receive window shut look the same to the sender: nothing is
    # acknowledged. The kernel ends the connection after server.dead_peer_timeout_s (TCP_USER_TIMEOUT).
    app = _live_app(tmp_path, ws_queue_size=8, dead_peer_timeout_s=1, send_buffer_bytes=4096)
    services = services_of(app)
    with LiveServer(app) as server:
        stuck = RawWebSocket(server.port, TOKEN, receive_buffer=2048)
        try:
            stuck.subscribe({"cameras": [PROBE_CAMERA], "tracks": True})
            assert services.broadcaster.client_count == 1
            for index in range(messages_to_overflow(services.config.server, receive_buffer=2048)):
                services.broadcaster.publish(probe_message(index))
            wait_for(lambda: services.broadcaster.client_count == 0, 60, 0.05, "the server to drop the dead peer")
        finally:
            stuck.close()


@pytest.fixture
def uvicorn_records() -> Iterator[list[logging.LogRecord]]:
    """What uvicorn logs (it does not propagate to the root logger, so caplog misses it)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    logger = logging.getLogger("uvicorn")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def test_messages_of_any_shape_get_an_error_and_the_connection_stays(
    tmp_path: Path, uvicorn_records: list[logging.LogRecord], caplog: pytest.LogCaptureFixture
) -> None:
    app = _live_app(tmp_path)
    bad: list[tuple[int, bytes, str]] = [
        (OP_TEXT, b"1" * 5000, "malformed JSON"),  # more digits than Python converts to an int
        (OP_TEXT, b"[" * 30_000 + b"]" * 30_000, "nested too deeply"),
        (OP_TEXT, b'{"type": "subscribe", "cameras": [' + b"[" * 30_000 + b"]" * 30_000 + b"]}", "malformed"),
        (OP_TEXT, b'{"type": "ping", "n": ' + b"9" * 5000 + b"}", "malformed JSON"),
        (OP_TEXT, b'"x"', "a message is a JSON object such as"),
        (OP_TEXT, b"null", "got null"),
        (OP_TEXT, b"[1]", "got an array"),
        (OP_TEXT, b'{"type": 5}', "unknown message type"),
        (OP_TEXT, b'{"type": "subscribe", "tracks": "maybe"}', "invalid subscribe"),
        (OP_TEXT, b'{"type": "ping", "extra": 1}', "invalid ping"),
        (OP_TEXT, b"x" * 200_000, "too long"),
        (OP_TEXT, b"\xff\xfe", ""),  # not UTF-8: the protocol closes (1007); checked below
        (OP_BINARY, b"\x00\x01", "binary"),
    ]
    with LiveServer(app) as server:
        ws = RawWebSocket(server.port, TOKEN)
        try:
            assert ws.recv_json()["type"] == "hello"
            for opcode, payload, expected in bad:
                if not expected:
                    continue
                ws.send_frame(opcode, payload)
                reply = ws.recv_json()
                assert reply["type"] == "error" and expected in reply["message"], (payload[:40], reply)
            ws.send_json({"type": "ping"})
            assert ws.recv_json() == {"type": "pong"}  # still open and answering
            # Over the frame limit the protocol closes with 1009 (message too big), no traceback: the
            # header announcing the length is enough (the payload would race the server's close).
            ws.send_frame_head(OP_TEXT, WS_MAX_FRAME_BYTES + 1)
            with pytest.raises(ConnectionError):
                ws.recv_json()
            assert ws.close_code == 1009
        finally:
            ws.close()
        invalid = RawWebSocket(server.port, TOKEN)
        try:
            assert invalid.recv_json()["type"] == "hello"
            invalid.send_frame(OP_TEXT, b"\xff\xfe")
            with pytest.raises(ConnectionError):
                invalid.recv_json()
            assert invalid.close_code == 1007  # invalid frame payload data
        finally:
            invalid.close()
    tracebacks = [r for r in [*uvicorn_records, *caplog.records] if r.exc_info or r.levelno >= logging.ERROR]
    assert not tracebacks, [r.getMessage() for r in tracebacks]


def test_failed_tokens_are_throttled_per_client(tmp_path: Path) -> None:
    app = create_app(make_config(tmp_path, server={"token": TOKEN, "auth_failures_per_minute": 3}), FakeController())
    now = [1000.0]
    services_of(app).auth_throttle.clock = lambda: now[0]  # time stands still unless the test moves it
    with TestClient(app) as client:
        for _ in range(3):
            assert client.get("/cameras", headers={"Authorization": "Bearer wrong-token-0123"}).status_code == 401
        for headers in ({"Authorization": "Bearer wrong-token-0123"}, {"Authorization": f"Bearer {TOKEN}"}, {}):
            # blocked whatever it sends: a right guess must not be told apart from a wrong one
            r = client.get("/cameras", headers=headers)
            assert r.status_code == 429 and r.headers["retry-after"] == "20", (headers, r.status_code)
            assert "too many failed authentication attempts" in r.json()["detail"]
        with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect(f"/ws/events?token={TOKEN}") as ws:
            ws.receive_json()
        assert info.value.code == 1008 and "too many" in info.value.reason
        assert client.get("/healthz").status_code == 200  # public routes are not throttled
        now[0] += 20  # one attempt refilled
        assert client.get("/cameras", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        now[0] += 40
        with client.websocket_connect("/ws/events") as ws:  # WebSocket failures count too
            ws.send_json({"type": "auth", "token": "wrong"})
            with pytest.raises(WebSocketDisconnect):
                ws.receive_json()
        for _ in range(2):
            assert client.get("/cameras").status_code == 401
        assert client.get("/cameras").status_code == 429


def test_connections_waiting_to_authenticate_are_capped(tmp_path: Path) -> None:
    app = _live_app(tmp_path, max_pending_websockets=2)
    pending = services_of(app).pending_websockets
    with LiveServer(app) as server:
        waiting = [RawWebSocket(server.port, None) for _ in range(2)]
        try:
            wait_for(lambda: pending.in_use == 2, 30, 0.02, "two connections waiting for their auth message")
            extra = RawWebSocket(server.port, None)
            with pytest.raises(ConnectionError):
                extra.recv_json()
            assert extra.close_code == 1013
            extra.close()
            waiting[0].send_json({"type": "auth", "token": TOKEN})  # authenticated: no longer pending
            assert waiting[0].recv_json()["type"] == "hello"
            wait_for(lambda: pending.in_use == 1, 30, 0.02, "the slot to be released")
            late = RawWebSocket(server.port, TOKEN)  # header auth never waits, so never counts
            assert late.recv_json()["type"] == "hello"
            late.close()
        finally:
            for ws in waiting:
                ws.close()
