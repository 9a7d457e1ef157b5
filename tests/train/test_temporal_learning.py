"""The temporal model learns from the order of frames, not from what single frames show.

The dataset (:mod:`actwatch.train.synthetic`) is built so that every frame of both classes has the same
distribution: only motion (the order of frames) tells the classes apart. A cached-features run must
therefore beat chance by far, and the same run with the frames of every window shuffled (train and
validation) must stay near chance.

Measured with seed 0 (this file's settings): temporal 1.00 validation accuracy, shuffled 0.53;
thresholds 0.90 and 0.70 leave room for numeric noise across platforms. The score with other seeds
varies with the random (untrained) MobileNetV2, from about 0.86 to 1.00.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from actwatch.model.config import ModelConfig
from actwatch.train.config import TrainConfig
from actwatch.train.dataset import DatasetIndex
from actwatch.train.synthetic import write_motion_dataset
from actwatch.train.trainer import train


@pytest.fixture(scope="module")
def motion_dataset(tmp_path_factory: pytest.TempPathFactory) -> DatasetIndex:
    # 2 classes x 60 clips of 16 frames: 30 / 18 / 12 clips per class for train / val / test.
    root = tmp_path_factory.mktemp("motion")
    return write_motion_dataset(root, videos_per_class=60, n_frames=16, size=48, val_ratio=0.3, test_ratio=0.2)


def run(dataset: DatasetIndex, out: Path, *, shuffle: bool) -> tuple[float, float, int]:
    cfg = TrainConfig(
        name="shuffled" if shuffle else "temporal",
        out_dir=out,
        mode="cached",
        seq_len=8,
        epochs=20,
        batch_size=16,
        lr=3e-3,
        windows_per_sequence=4,
        scheduler="none",
        early_stopping=8,
        model=ModelConfig(pretrained=False, hidden_size=64, fc_size=32),
        shuffle_frames=shuffle,
        tensorboard=False,
        seed=0,
    )
    result = train(cfg, dataset.root, progress=False)
    assert result.test is not None
    return result.best_metric, result.test["accuracy"], len(result.history)


def test_temporal_order_is_learned_and_shuffled_control_is_not(motion_dataset: DatasetIndex, tmp_path: Path) -> None:
    assert {len(motion_dataset.split(s)) for s in ("train", "val", "test")} == {60, 36, 24}
    temporal_val, temporal_test, temporal_epochs = run(motion_dataset, tmp_path, shuffle=False)
    shuffled_val, shuffled_test, shuffled_epochs = run(motion_dataset, tmp_path, shuffle=True)
    print(
        f"\nvalidation accuracy (best epoch): temporal {temporal_val:.3f} ({temporal_epochs} epochs), "
        f"frame-shuffled control {shuffled_val:.3f} ({shuffled_epochs} epochs); "
        f"test accuracy: temporal {temporal_test:.3f}, shuffled {shuffled_test:.3f}"
    )
    assert temporal_val >= 0.90
    assert temporal_test >= 0.85
    assert shuffled_val <= 0.70
    assert shuffled_test <= 0.75  # 24 test windows: one window is 4 points
