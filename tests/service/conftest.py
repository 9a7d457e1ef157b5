"""Fixtures of the service tests: a fake camera controller (the one part that cannot run here without
the models) around the real store, broadcaster, metrics, sink and app; a real uvicorn server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from actwatch.config import AppConfig, CameraConfig, mask_url
from actwatch.service.app import create_app
from actwatch.service.deps import ServiceState
from actwatch.service.server import listen_socket, uvicorn_config
from tests.support.rtsp import RtspPublisher, RtspServer

TOKEN = "test-token-0123456789abcdef"
CAMERA_PASSWORD = "hunter2secret"


@dataclass(frozen=True)
class FakeStatus:
    camera_id: str
    url: str
    state: str
    last_error: str | None = None
    frames_read: int = 0
    frames_dropped: int = 0
    fps: float = 0.0
    reconnects: int = 0
    last_frame_wall_time: float | None = None


@dataclass
class FakeController:
    """Records the calls the API makes; reports every added camera as streaming."""

    calls: list[tuple[str, Any]] = field(default_factory=list)
    cameras: dict[str, CameraConfig] = field(default_factory=dict)
    running: bool = False
    is_ready: bool = True
    reasons: list[str] = field(default_factory=list)  # what not_ready_reasons says
    fail_add: Exception | None = None
    states: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # camera id -> (state, last error)

    def start(self) -> None:
        self.calls.append(("start", None))
        self.running = True

    def stop(self) -> None:
        self.calls.append(("stop", None))
        self.running = False

    def add_camera(self, cfg: CameraConfig) -> None:
        self.calls.append(("add", cfg.id))
        if self.fail_add is not None:
            raise self.fail_add
        self.cameras[cfg.id] = cfg

    def update_camera(self, cfg: CameraConfig) -> None:
        self.calls.append(("update", cfg.id))
        self.cameras[cfg.id] = cfg

    def remove_camera(self, camera_id: str) -> None:
        self.calls.append(("remove", camera_id))
        self.cameras.pop(camera_id, None)

    def statuses(self) -> list[FakeStatus]:
        return [
            FakeStatus(cid, mask_url(c.url), *self.states.get(cid, ("streaming", None)), 120, 3, 9.5, 1, time.time())
            for cid, c in self.cameras.items()
        ]

    def ready(self) -> bool:
        return self.running and self.is_ready

    def not_ready_reasons(self) -> list[str]:
        return list(self.reasons)


def make_config(tmp_path: Path, **overrides: Any) -> AppConfig:
    data: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        # Many tests send wrong tokens on purpose; the throttle has its own tests with a small budget.
        "server": {"token": TOKEN, "auth_failures_per_minute": 10_000},
        "cameras": [
            {"id": "cam1", "name": "Front door", "url": f"rtsp://admin:{CAMERA_PASSWORD}@10.0.0.5:554/live"},
            {"id": "cam2", "url": "rtsp://10.0.0.6/live", "enabled": False},
        ],
    }
    data.update(overrides)
    return AppConfig(**data)


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def frame(h: int = 120, w: int = 160) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)


@pytest.fixture
def controller() -> FakeController:
    return FakeController()


@pytest.fixture
def app(tmp_path: Path, controller: FakeController) -> FastAPI:
    return create_app(make_config(tmp_path), controller)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:  # runs the lifespan: cameras added, controller started
        yield c


def services_of(app: FastAPI) -> ServiceState:
    services = app.state.services
    assert isinstance(services, ServiceState)
    return services


class LiveServer:
    """The app on a real uvicorn server on 127.0.0.1, in a thread, with the settings ``actwatch serve`` uses
    (:mod:`actwatch.service.server`) for the app's own ``server:`` section."""

    def __init__(self, app: FastAPI) -> None:
        settings = services_of(app).config.server
        self.listener = listen_socket(settings, port=0)  # bound here: no race for a free port
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn_config(app, settings, log_level="warning"))
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.listener]}, name="uvicorn-test", daemon=True
        )

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.listener.close()


@pytest.fixture
def live_server(app: FastAPI) -> Iterator[LiveServer]:
    with LiveServer(app) as server:
        yield server


@pytest.fixture(scope="module")
def rtsp(vtest_path: Path) -> Iterator[tuple[RtspServer, RtspPublisher]]:
    """A real RTSP server on loopback with vtest.avi published at path ``door`` (one per test module)."""
    with RtspServer() as server:
        publisher = server.publisher("door", vtest_path)
        publisher.start()
        try:
            yield server, publisher
        finally:
            publisher.stop()
