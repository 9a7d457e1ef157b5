"""Run the real service (uvicorn + the real pipeline) in a thread, for end-to-end tests."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvicorn
from websockets.sync.client import ClientConnection, connect

from actwatch.config import AppConfig, ServerConfig
from actwatch.service.app import create_app
from actwatch.service.events import FrameOverlay, TrackOverlay
from actwatch.service.messages import TracksMessage, encode
from actwatch.service.server import listen_socket, uvicorn_config
from tests.support.net import free_port

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float, interval: float = 0.25, what: str = "condition") -> T:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class LiveService:
    """The app of ``config`` served by uvicorn on 127.0.0.1 in a background thread, with exactly the server
    settings of ``actwatch serve`` (:mod:`actwatch.service.server`: pings, buffers, timeouts)."""

    def __init__(self, config: AppConfig) -> None:
        self.config = config
        self.port = config.server.port
        self.app = create_app(config, announce_token=lambda _message: None)
        self.token = self.app.state.services.token.get_secret_value()
        self.server = uvicorn.Server(uvicorn_config(self.app, config.server, log_level="warning"))
        self.listener = listen_socket(config.server)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.listener]}, name="uvicorn-test", daemon=True
        )
        self.http = httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )

    def start(self) -> LiveService:
        self.thread.start()
        wait_for(lambda: self.server.started, 120, what="uvicorn to start")
        return self

    def stop(self) -> None:
        self.http.close()
        self.server.should_exit = True
        self.thread.join(60)
        self.listener.close()
        assert not self.thread.is_alive(), "the service did not shut down within 60 s"

    def camera(self, camera_id: str) -> dict[str, Any]:
        response = self.http.get(f"/cameras/{camera_id}")
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def metric(self, name: str, **labels: str) -> float:
        """A sample of /metrics (0 when absent)."""
        text = self.http.get("/metrics").text
        want = ",".join(f'{k}="{v}"' for k, v in labels.items())
        for line in text.splitlines():
            if line.startswith(f"{name}{{{want}}} ") or (not labels and line.startswith(f"{name} ")):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    @contextmanager
    def websocket(self, subscribe: dict[str, Any] | None = None) -> Iterator[ClientConnection]:
        headers = {"Authorization": f"Bearer {self.token}"}
        with connect(f"ws://127.0.0.1:{self.port}/ws/events", additional_headers=headers, open_timeout=30) as ws:
            hello = json.loads(ws.recv(timeout=30))
            assert hello["type"] == "hello", hello
            if subscribe is not None:
                ws.send(json.dumps({"type": "subscribe", **subscribe}))
                # What arrives before the acknowledgement was sent under the subscription before it.
                while json.loads(ws.recv(timeout=30))["type"] != "subscribed":
                    pass
            yield ws

    def raw_websocket(self, subscribe: dict[str, Any]) -> RawWebSocket:
        raw = RawWebSocket(self.port, self.token)
        raw.subscribe(subscribe)
        return raw


OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x2, 0x8, 0x9, 0xA


class RawWebSocket:
    """A minimal WebSocket client on a plain socket with a tiny receive buffer: a *really* slow client.

    Client libraries read the socket in a background thread and queue what arrives (and answer pings), so
    a test client that "does not read" still drains the server. This one reads only when asked to, and
    never answers a ping: it counts them (:attr:`pings`).
    """

    def __init__(self, port: int, token: str | None, receive_buffer: int = 2048) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)  # before connect: the window
        self.sock.settimeout(30)
        self.sock.connect(("127.0.0.1", port))
        self.pings = 0
        self.close_code: int | None = None
        key = base64.b64encode(os.urandom(16)).decode()
        authorization = f"Authorization: Bearer {token}\r\n" if token else ""
        self.sock.sendall(
            f"GET /ws/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n{authorization}"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += self._exact(1)
        assert b" 101 " in head.split(b"\r\n", 1)[0], head

    def subscribe(self, subscribe: dict[str, Any]) -> None:
        """Read the ``hello``, send a subscription and wait until the server confirms it is in force."""
        hello = self.recv_json()
        assert hello["type"] == "hello", hello
        self.send_json({"type": "subscribe", **subscribe})
        while (reply := self.recv_json())["type"] != "subscribed":  # events may come first
            assert reply["type"] != "error", reply

    def _exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(min(n - len(data), 1 << 16))
            if not chunk:
                raise ConnectionError("the server closed the connection")
            data += chunk
        return data

    @staticmethod
    def _frame_head(opcode: int, n: int, mask: bytes) -> bytes:
        """The header of a masked frame of ``n`` payload bytes (client frames must be masked)."""
        if n < 126:
            head = bytes([0x80 | opcode, 0x80 | n])
        elif n < 1 << 16:
            head = bytes([0x80 | opcode, 0x80 | 126]) + struct.pack(">H", n)
        else:
            head = bytes([0x80 | opcode, 0x80 | 127]) + struct.pack(">Q", n)
        return head + mask

    def send_frame(self, opcode: int, payload: bytes) -> None:
        """One masked frame."""
        n = len(payload)
        mask = os.urandom(4)
        key = (mask * (n // 4 + 1))[:n]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big") if n else b""
        self.sock.sendall(self._frame_head(opcode, n, mask) + masked)

    def send_frame_head(self, opcode: int, n: int) -> None:
        """Only the header of a frame that announces ``n`` payload bytes: the server judges a frame's size
        from its header, so a test of the size limit needs no payload (and does not race the server's
        close against a large send, which the kernel's buffer sizes would decide)."""
        self.sock.sendall(self._frame_head(opcode, n, os.urandom(4)))

    def send_text(self, text: str) -> None:
        self.send_frame(OP_TEXT, text.encode())

    def send_json(self, message: Any) -> None:
        self.send_text(json.dumps(message))

    def recv_frame(self) -> tuple[int, bytes]:
        """The next frame's opcode and payload (server frames are unmasked)."""
        first, second = self._exact(2)
        length = second & 0x7F
        if length == 126:
            length = struct.unpack(">H", self._exact(2))[0]
        elif length == 127:
            length = struct.unpack(">Q", self._exact(8))[0]
        return first & 0x0F, self._exact(length)

    def recv_json(self) -> dict[str, Any]:
        """The next text message; pings are counted, a close frame raises ``ConnectionError``."""
        while True:
            opcode, payload = self.recv_frame()
            if opcode == OP_TEXT:
                data: dict[str, Any] = json.loads(payload)
                return data
            if opcode == OP_PING:
                self.pings += 1
            elif opcode == OP_CLOSE:
                self.close_code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None
                raise ConnectionError(f"the server closed the connection with code {self.close_code}")

    def close(self) -> None:
        self.sock.close()


# --------------------------------------------------------------------------- a known stream of messages
PROBE_CAMERA = "probe"  # no pipeline camera has this id: only the test publishes for it


def probe_message(index: int, boxes: int = 40) -> TracksMessage:
    """Track boxes "of frame ``index``" for :data:`PROBE_CAMERA` (about 90 bytes of JSON per box)."""
    tracks = tuple(TrackOverlay(i + 1, (float(i), 2.0, 30.0, 60.0), 0.5) for i in range(boxes))
    return TracksMessage(FrameOverlay(PROBE_CAMERA, float(index), tracks))


def messages_to_overflow(settings: ServerConfig, receive_buffer: int) -> int:
    """More messages than everything between the broadcaster and a client that reads nothing can hold:
    its queue, the sender's one in hand, the protocol's write buffer (64 KiB high-water mark plus one
    frame) and both kernel buffers (Linux doubles what SO_SNDBUF/SO_RCVBUF ask for). Publishing this
    many to a client that does not read *must* drop some: no timing or buffer luck involved."""
    message_bytes = len(encode(probe_message(0)))
    in_flight_bytes = 2 * settings.send_buffer_bytes + (1 << 16) + 2 * max(receive_buffer, 2304) + message_bytes
    return 2 * (settings.ws_queue_size + 1 + in_flight_bytes // message_bytes + 1)


def read_probe_stream(raw: RawWebSocket, last_index: int) -> tuple[list[int], list[int]]:
    """Read ``raw`` until probe message ``last_index``: the indices received and the dropped counts."""
    received: list[int] = []
    dropped: list[int] = []
    while not received or received[-1] != last_index:
        message = raw.recv_json()
        if message["type"] == "dropped":
            dropped.append(message["count"])
        elif message["type"] == "tracks" and message["camera_id"] == PROBE_CAMERA:
            received.append(int(message["frame_time"]))
    return received, dropped


def collect(
    ws: ClientConnection, until: Callable[[list[dict[str, Any]]], bool], timeout: float
) -> list[dict[str, Any]]:
    """Messages from ``ws`` until ``until(messages)`` holds; fails after ``timeout`` seconds."""
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not until(messages):
        left = deadline - time.monotonic()
        if left <= 0:
            kinds = sorted({m.get("type", "?") for m in messages})
            raise AssertionError(f"timed out after {timeout:.0f} s; got {len(messages)} messages of types {kinds}")
        try:
            messages.append(json.loads(ws.recv(timeout=min(left, 5.0))))
        except TimeoutError:
            continue
    return messages


def door_and_hall_config(
    data_dir: Path,
    rtsp_url: str,
    vtest: Path,
    detector: Path,
    model_dir: Path,
    *,
    token: str,
    **pipeline: Any,
) -> AppConfig:
    """The end-to-end tests' service: ``door`` reads ``rtsp_url`` (RTSP over UDP, quick reconnects),
    ``hall`` plays vtest.avi itself in real time, and every classified window of a tracked person alerts
    (the test model is untrained), so events trace the pipeline's work. ``pipeline`` adds settings."""
    return AppConfig.model_validate(
        {
            "data_dir": str(data_dir),
            "server": {"token": token, "port": free_port(), "ws_queue_size": 16},
            "cameras": [
                {"id": "door", "name": "Front door", "url": rtsp_url},
                {"id": "hall", "url": str(vtest), "loop": True, "realtime": True},
            ],
            "sources": {"file_dirs": [str(vtest.parent)]},
            "capture": {
                "stall_timeout_s": 2.0,
                "backoff_initial_s": 0.2,
                "backoff_max_s": 1.0,
                "rtsp_transport": "udp",
            },
            "detector": {"weights": str(detector), "person_class_ids": [0, 1]},
            "model": {"dir": str(model_dir)},
            "pipeline": {"stride": 2, **pipeline},
            "alerts": {
                "rules": [
                    {"label": "walking", "threshold": 0.01, "n": 1, "m": 1, "cooldown_s": 0, "min_track_age_s": 0}
                ]
            },
        }
    )
