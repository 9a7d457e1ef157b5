"""Fixtures of the delivery tests: a real Mosquitto per test, a real webhook receiver, box apps built by
``create_app`` with a fake camera controller (the compute pipeline is what cannot run in every test here;
one test runs the real pipeline on a file camera), and events emitted through the app's real sink."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI

from actwatch.config import AppConfig
from actwatch.service.deps import ServiceState
from actwatch.service.events import AlertRecord, Event
from tests.support.mosquitto import MosquittoBroker
from tests.support.webhook import WebhookReceiver

TOKEN = "delivery-test-token-0123456789"


def box_config(data_dir: Path, box_id: str | None, broker_url: str | None, **sections: Any) -> AppConfig:
    data: dict[str, Any] = {
        "data_dir": str(data_dir),
        "server": {"token": TOKEN},
        "cameras": [{"id": "door", "name": "Front door", "url": "rtsp://10.0.0.5/live"}],
        "alerts": {"rules": [{"label": "fighting"}, {"label": "fall"}]},
        "outbox": {"retry_initial_s": 0.05, "retry_max_s": 0.5},
        **sections,
    }
    if broker_url is not None:
        data["mqtt"] = {"url": broker_url, "box_id": box_id, "state_hold_s": 600, **data.pop("mqtt", {})}
    return AppConfig.model_validate(data)


def services_of(app: FastAPI) -> ServiceState:
    services = app.state.services
    assert isinstance(services, ServiceState)
    return services


def emit(
    app: FastAPI, count: int, *, label: str = "fighting", camera: str = "door", start: int = 0, prefix: str = "ev"
) -> list[str]:
    """``count`` alerts through the app's sink, as the pipeline thread emits them; their ids in order."""
    ids = []
    frame = np.zeros((96, 128, 3), np.uint8)
    for index in range(start, start + count):
        now = time.time()
        event = Event(
            camera, index + 1, label, 0.9, now - 1.0, now, (10.0, 10.0, 60.0, 90.0), id=f"{prefix}{index:05d}"
        )
        services_of(app).sink.emit_event(AlertRecord(event, frame, None))
        ids.append(event.id)
    return ids


@pytest.fixture
def broker() -> Iterator[MosquittoBroker]:
    with MosquittoBroker() as running:
        yield running


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver
