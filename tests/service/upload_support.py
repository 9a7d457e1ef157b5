"""Shared parts of the upload-job tests (API and browser): a short clip of vtest.avi and the app with the
real compute pipeline (real detector and ONNX graphs, built once per module by the service's wiring)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from actwatch.capture.video_file import read_video, write_video
from actwatch.config import AppConfig
from actwatch.service.app import create_app
from actwatch.service.metrics import ServiceMetrics
from actwatch.service.pipeline import StreamPipeline
from actwatch.service.stages import Stages, build_stages

from .conftest import TOKEN, services_of

CLIP_FRAMES = 24  # at 10 fps: a window of 8 samples after 0.8 s, then one every 2 samples (stride 2)


def write_clip(source: Path, target: Path, frames: int) -> Path:
    """The first ``frames`` frames of ``source`` as an MJPG AVI (what a user might upload)."""
    return write_video(target, [frame.image for frame in read_video(source, max_frames=frames)], fps=10.0)


def make_clip(vtest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A test module's ``clip`` fixture: :data:`CLIP_FRAMES` frames of vtest.avi (2.4 s, people walking)."""
    return write_clip(vtest, tmp_path_factory.mktemp("clips") / "people.avi", CLIP_FRAMES)


def real_config(
    data_dir: Path, detector: Path, model_dir: Path, *, camera_file: Path | None = None, **predictions: Any
) -> AppConfig:
    """The service's settings; ``camera_file``: one camera playing that video in a loop."""
    cameras = [{"id": "yard", "url": str(camera_file), "loop": True}] if camera_file is not None else []
    return AppConfig.model_validate(
        {
            "data_dir": str(data_dir),
            "cameras": cameras,
            "sources": {"file_dirs": [str(camera_file.parent)] if camera_file is not None else []},
            "server": {"token": TOKEN, "auth_failures_per_minute": 10_000},
            "detector": {"weights": str(detector), "person_class_ids": [0, 1], "conf": 0.1},
            "model": {"dir": str(model_dir)},
            "pipeline": {"stride": 2},
            "predictions": {"compute_share": 1.0, **predictions},
        }
    )


def make_live_stages(detector: Path, model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Stages:
    """A test module's ``live_stages`` fixture: the live service's stages, built by the service's wiring
    (the detector and the model loaded once)."""
    config = real_config(tmp_path_factory.mktemp("stages"), detector, model_dir)

    class NoSink:
        def emit_event(self, alert: object) -> None: ...
        def emit_tracks(self, overlay: object, image: object = None) -> None: ...

    return build_stages(config, sink=NoSink(), metrics=ServiceMetrics())


def real_app(
    tmp_path: Path,
    detector: Path,
    model_dir: Path,
    live: Stages | None,
    *,
    camera_file: Path | None = None,
    **predictions: Any,
) -> FastAPI:
    """The app with the compute pipeline over ``live`` (stages shared between tests: the models loaded once),
    or with ``live=None`` exactly as ``actwatch serve`` builds it (its own stages, the app's metrics)."""
    config = real_config(tmp_path / "data", detector, model_dir, camera_file=camera_file, **predictions)
    return create_app(config, StreamPipeline(live) if live is not None else None)


def wait_done(app: FastAPI) -> None:
    assert services_of(app).predictions.wait_idle(timeout=600), "the job did not finish in 10 minutes"
