"""Shared fixtures: the real assets (detector weights, vtest.avi) and a real exported ONNX model.

The assets come from ``actwatch.assets`` (the same code ``actwatch assets`` runs), so a test run on a
fresh machine fetches them exactly as a user would; the model is an untrained MobileNetV2-LSTM
(random initialisation: ImageNet weights cannot be fetched here) exported to ONNX once per session.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")

TEST_CLASSES = ["walking", "standing", "fighting"]
TEST_INPUT_SIZE = (64, 64)  # small crops keep the CPU test suite fast; the product default is 112x112


@pytest.fixture(scope="session")
def assets_dir() -> Path:
    from actwatch.assets import default_cache_dir

    return default_cache_dir()


@pytest.fixture(scope="session")
def vtest_path(assets_dir: Path) -> Path:
    """OpenCV's vtest.avi (768x576, 10 fps, 795 frames)."""
    from actwatch.assets import ensure_sample_video

    return ensure_sample_video(assets_dir)


@pytest.fixture(scope="session")
def detector_weights(assets_dir: Path) -> Path:
    """The real YOLOv8 person detector (classes 0 Normal, 1 Fall: both persons)."""
    from actwatch.assets import ensure_detector

    return ensure_detector(assets_dir)


@pytest.fixture(scope="session")
def checkpoint_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained MobileNetV2-LSTM checkpoint with small inputs."""
    from actwatch.model.checkpoint import init_checkpoint, save_checkpoint
    from actwatch.model.config import InputSpec, ModelConfig

    ckpt = init_checkpoint(
        TEST_CLASSES,
        model_config=ModelConfig(hidden_size=64, fc_size=32, pretrained=False),
        input_spec=InputSpec(seq_len=8, input_size=TEST_INPUT_SIZE, fps=10.0),
    )
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    save_checkpoint(ckpt, path)
    return path


@pytest.fixture(scope="session")
def exported_model_dir(checkpoint_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``checkpoint_path`` exported to encoder.onnx + head.onnx + model.onnx + manifest.json."""
    from actwatch.export.onnx_export import export_checkpoint

    out = tmp_path_factory.mktemp("exported")
    export_checkpoint(checkpoint_path, out)
    return out


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One torch thread for a module of small-tensor tests, restored afterwards.

    On a few shared CPU cores torch's default of one thread per core makes every small convolution
    spin-wait for the other threads (3-4x slower under load).
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def blocked_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``ACTWATCH_CACHE_DIR`` pointing at a file: nothing can be written under it."""
    from actwatch.paths import CACHE_DIR_ENV

    blocked = tmp_path / "cache"
    blocked.write_text("a file where the cache folder should be")
    monkeypatch.setenv(CACHE_DIR_ENV, str(blocked))
    return blocked
