"""Fixtures of the training tests: small synthetic datasets and one short training run, built once."""

from __future__ import annotations

from pathlib import Path

import pytest

from actwatch.model.config import ModelConfig
from actwatch.train.config import TrainConfig
from actwatch.train.dataset import DatasetIndex
from actwatch.train.synthetic import write_motion_dataset
from actwatch.train.trainer import TrainResult, train

# Small everything: 48x48 whole-frame clips, windows of 8, a narrow head, random-init MobileNetV2
# (ImageNet weights cannot be fetched here).
SMALL_MODEL = ModelConfig(pretrained=False, hidden_size=32, fc_size=16)


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> DatasetIndex:
    """24 motion clips (12 per class) of 16 frames: splits 12 / 6 / 6 videos."""
    root = tmp_path_factory.mktemp("small_ds")
    return write_motion_dataset(root, videos_per_class=12, n_frames=16, size=48, val_ratio=0.25, test_ratio=0.25)


def small_config(out: Path, **overrides: object) -> TrainConfig:
    values: dict[str, object] = {
        "name": "t",
        "out_dir": out,
        "seq_len": 8,
        "epochs": 2,
        "batch_size": 8,
        "model": SMALL_MODEL,
        "tensorboard": False,
        **overrides,
    }
    return TrainConfig.model_validate(values)


@pytest.fixture(scope="session")
def trained_run(small_dataset: DatasetIndex, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    """A finished 2-epoch cached-mode run (TensorBoard on) on ``small_dataset``."""
    out = tmp_path_factory.mktemp("experiments")
    return train(small_config(out, tensorboard=True), small_dataset.root, progress=False)
