"""WS /ws/events: authentication, hello, subscriptions, errors that keep the connection open."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from actwatch.service.events import AlertRecord, Event, FrameOverlay, TrackOverlay

from .conftest import TOKEN, LiveServer, frame, services_of


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
            {"track_id": 4, "bbox": [1.0, 2.0, 3.0, 4.0], "confidence": 0.8, "label": "falling", "score": 0.7}
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
