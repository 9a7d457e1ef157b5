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
from typing import Any, TypeVar

import httpx
import uvicorn
from websockets.sync.client import ClientConnection, connect

from actwatch.config import AppConfig
from actwatch.service.app import create_app

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
    """The app of ``config`` served by uvicorn on 127.0.0.1 in a background thread.

    The listening socket gets a small send buffer (accepted connections inherit it, and a fixed size
    turns off the kernel's autotuning): otherwise a client that stops reading can park megabytes in
    loopback socket buffers before the server notices it is slow.
    """

    def __init__(self, config: AppConfig, send_buffer: int = 16384) -> None:
        self.config = config
        self.port = config.server.port
        self.app = create_app(config, announce_token=lambda _message: None)
        self.token = self.app.state.services.token.get_secret_value()
        self.server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                ws="websockets",
                ws_max_size=65536,
                # No keep-alive pings: the slow-client test keeps a client unread for a minute on purpose.
                ws_ping_interval=None,
            )
        )
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
        self.listener.bind(("127.0.0.1", self.port))
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
        with connect(f"ws://127.0.0.1:{self.port}/ws/events?token={self.token}", open_timeout=30) as ws:
            hello = json.loads(ws.recv(timeout=30))
            assert hello["type"] == "hello", hello
            if subscribe is not None:
                ws.send(json.dumps({"type": "subscribe", **subscribe}))
            yield ws

    def raw_websocket(self, subscribe: dict[str, Any]) -> RawWebSocket:
        return RawWebSocket(self.port, self.token, subscribe)


class RawWebSocket:
    """A minimal WebSocket client on a plain socket with a tiny receive buffer: a *really* slow client.

    Client libraries read the socket in a background thread and queue what arrives, so a test client
    that "does not read" still drains the server. This one reads only when :meth:`recv_json` is called.
    """

    def __init__(self, port: int, token: str, subscribe: dict[str, Any], receive_buffer: int = 2048) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)  # before connect: the window
        self.sock.settimeout(30)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET /ws/events?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += self._exact(1)
        assert b" 101 " in head.split(b"\r\n", 1)[0], head
        self.send_json({"type": "subscribe", **subscribe})

    def _exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("the server closed the connection")
            data += chunk
        return data

    def send_json(self, message: dict[str, Any]) -> None:
        payload = json.dumps(message).encode()
        assert len(payload) < 126
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)

    def recv_json(self) -> dict[str, Any]:
        """The next text message (server frames are unmasked; control frames are skipped)."""
        while True:
            first, second = self._exact(2)
            length = second & 0x7F
            if length == 126:
                length = struct.unpack(">H", self._exact(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self._exact(8))[0]
            payload = self._exact(length)
            if first & 0x0F == 0x1:
                data: dict[str, Any] = json.loads(payload)
                return data

    def close(self) -> None:
        self.sock.close()


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
