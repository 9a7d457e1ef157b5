"""The ONNX Runtime providers each network really runs on are reported: by the stages as built from the
configuration (real detector, real exported model), at ``/readyz`` and as a ``/metrics`` gauge."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from actwatch.config import AppConfig
from actwatch.onnx_choices import CPU
from actwatch.service.events import AlertRecord, FrameOverlay
from actwatch.service.metrics import ServiceMetrics
from actwatch.service.stages import build_stages

from .conftest import auth, services_of

GAUGE = "actwatch_onnx_provider_active"


class NoSink:
    def emit_event(self, alert: AlertRecord) -> None:
        raise AssertionError("no camera runs: nothing is emitted")

    def emit_tracks(self, overlay: FrameOverlay, image: np.ndarray | None = None) -> None:
        raise AssertionError("no camera runs: nothing is emitted")


def test_built_stages_report_their_providers(detector_weights: Path, exported_model_dir: Path) -> None:
    config = AppConfig.model_validate(
        {"detector": {"weights": str(detector_weights)}, "model": {"dir": str(exported_model_dir)}, "cameras": []}
    )
    metrics = ServiceMetrics()
    build_stages(config, sink=NoSink(), metrics=metrics)
    # No GPU here: both networks run on the CPU, and say so.
    assert metrics.active_providers() == {"detector": [CPU], "model": [CPU]}
    for component in ("detector", "model"):
        assert metrics.registry.get_sample_value(GAUGE, {"component": component, "provider": CPU}) == 1.0


def test_readyz_and_metrics_show_the_providers(app: FastAPI) -> None:
    with TestClient(app) as client:
        assert client.get("/readyz").json() == {"status": "ready"}  # nothing loaded: nothing to report
        metrics = services_of(app).metrics
        metrics.set_active_providers("detector", ["CUDAExecutionProvider", CPU])
        metrics.set_active_providers("model", [CPU])
        body = client.get("/readyz").json()
        assert body == {"status": "ready", "providers": {"detector": ["CUDAExecutionProvider", CPU], "model": [CPU]}}
        text = client.get("/metrics", headers=auth()).text
        assert f'{GAUGE}{{component="detector",provider="CUDAExecutionProvider"}} 1.0' in text
        # A component set again (a CPU fallback after a restart of the stage) drops its old series.
        metrics.set_active_providers("detector", [CPU])
        text = client.get("/metrics", headers=auth()).text
        assert "CUDAExecutionProvider" not in text and f'{GAUGE}{{component="detector",provider="{CPU}"}} 1.0' in text


def test_an_untrained_model_is_visible_in_the_start_up_log_readyz_and_metrics(
    app: FastAPI, detector_weights: Path, exported_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = AppConfig.model_validate(
        {"detector": {"weights": str(detector_weights)}, "model": {"dir": str(exported_model_dir)}, "cameras": []}
    )
    metrics = ServiceMetrics()
    with caplog.at_level(logging.INFO, logger="actwatch.service.stages"):
        build_stages(config, sink=NoSink(), metrics=metrics)
    # The session's exported model was never trained (init-model): the start-up log says so, loudly.
    (record,) = [r for r in caplog.records if r.name == "actwatch.service.stages" and "backbone" in r.getMessage()]
    assert record.levelno == logging.WARNING and "UNTRAINED" in record.getMessage()
    assert "backbone random" in record.getMessage()
    assert metrics.registry.get_sample_value("actwatch_model_trained") == 0.0
    provenance = metrics.model_provenance()
    assert provenance is not None and provenance.untrained
    with TestClient(app) as client:
        services_of(app).metrics.set_model_provenance(provenance)
        body = client.get("/readyz").json()
        assert body == {"status": "ready", "model": {"trained": False, "backbone": "random"}}
