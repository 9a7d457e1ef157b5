"""Window sampling, window-consistent augmentation, metrics and class weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from actwatch.model.windows import window_indices
from actwatch.train.config import AugmentConfig, TrainConfig, load_train_config
from actwatch.train.metrics import classification_metrics
from actwatch.train.trainer import class_weights
from actwatch.train.windows import FeatureWindows, augment_window


def test_window_offsets_and_short_policies() -> None:
    rng = np.random.default_rng(0)
    starts = {int(window_indices(20, 8, offset="random", rng=rng)[0]) for _ in range(300)}
    assert starts == set(range(13))  # every offset 0..n-seq_len is reachable
    assert window_indices(21, 8, offset="center").tolist() == list(range(6, 14))
    assert window_indices(3, 7, offset="random", short_policy="loop").tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert window_indices(3, 7, offset="random", short_policy="pad").tolist() == [0, 1, 2, 2, 2, 2, 2]


def test_window_indices_serve_prediction_too() -> None:
    # actwatch predict: integer offsets along a track, short tracks padded at the front.
    assert window_indices(10, 4, offset=6).tolist() == [6, 7, 8, 9]
    assert window_indices(3, 5, short_policy="pad_front").tolist() == [0, 0, 0, 1, 2]
    with pytest.raises(ValueError, match="outside"):
        window_indices(10, 4, offset=7)


def test_feature_windows_deterministic_per_epoch_and_shuffle() -> None:
    feats = [np.arange(30, dtype=np.float32)[:, None].repeat(2, 1)]
    ds = FeatureWindows(feats, [1], 8, train=True, seed=3, windows_per_sequence=4)
    assert len(ds) == 4
    first = [ds[i][0][:, 0].tolist() for i in range(4)]
    assert first == [ds[i][0][:, 0].tolist() for i in range(4)]  # same epoch, same windows
    ds.set_epoch(1)
    assert first != [ds[i][0][:, 0].tolist() for i in range(4)]
    for w in first:
        assert np.all(np.diff(w) == 1)  # consecutive frames, in order
    shuffled = FeatureWindows(feats, [1], 8, train=False, shuffle_frames=True)
    shuffled_window = shuffled[0][0][:, 0].numpy()
    assert sorted(shuffled_window.tolist()) == list(range(11, 19)) and not np.all(np.diff(shuffled_window) == 1)


def test_augmentation_is_identical_across_frames() -> None:
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)
    window = np.stack([frame] * 5)
    cfg = AugmentConfig(hflip=True, color_jitter=0.4, crop_scale=(0.5, 0.9))
    outs = [augment_window(window, cfg, np.random.default_rng(seed)) for seed in range(4)]
    for out in outs:
        assert out.shape == window.shape and out.dtype == np.uint8
        assert all(np.array_equal(out[0], out[t]) for t in range(1, 5))  # one transform for all frames
    assert not all(np.array_equal(outs[0], o) for o in outs[1:])  # but a different one per window
    off = AugmentConfig(hflip=False, color_jitter=0.0, crop_scale=(1.0, 1.0))
    assert np.array_equal(augment_window(window, off, rng), window)


def test_metrics_top_k_and_per_class() -> None:
    scores = np.array(
        [
            [0.7, 0.2, 0.1],  # true 0, right
            [0.5, 0.3, 0.2],  # true 1, second guess
            [0.1, 0.3, 0.6],  # true 2, right
            [0.6, 0.1, 0.3],  # true 2, second guess
        ]
    )
    m = classification_metrics(scores, np.array([0, 1, 2, 2]), ["a", "b", "c"])
    assert m.accuracy == 0.5 and m.top_k == 3 and m.top_k_accuracy == 1.0
    assert m.confusion.tolist() == [[1, 0, 0], [1, 0, 0], [1, 0, 1]]
    assert m.precision.tolist() == pytest.approx([1 / 3, 0.0, 1.0])
    assert m.recall.tolist() == pytest.approx([1.0, 0.0, 0.5])
    assert m.f1.tolist() == pytest.approx([0.5, 0.0, 2 / 3])
    two = classification_metrics(scores[:, :2], np.array([0, 1, 1, 0]), ["a", "b"])
    assert two.top_k == 2 and two.top_k_accuracy == 1.0  # k = min(5, C)


def test_class_weights() -> None:
    assert class_weights(np.array([30, 10, 0]), "balanced").tolist() == pytest.approx([2 / 3, 2.0, 0.0])
    assert class_weights(np.array([30, 10]), "sqrt").tolist() == pytest.approx([np.sqrt(2 / 3), np.sqrt(2)])
    assert class_weights(np.array([30, 10]), "none").tolist() == [1.0, 1.0]


def test_train_config_strict(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text("epochs: 4\nmodel:\n  temporal: gru\n  pretrained: false\naugment:\n  hflip: false\n")
    cfg = load_train_config(path, {"epochs": 6, "model": {"hidden_size": 32}})
    assert (cfg.epochs, cfg.model.temporal, cfg.model.hidden_size, cfg.augment.hflip) == (6, "gru", 32, False)
    path.write_text("epochs: 4\nlearning_rate: 0.1\n")
    with pytest.raises(Exception, match="learning_rate"):
        load_train_config(path)
    with pytest.raises(Exception, match="r3d_18"):
        TrainConfig.model_validate({"mode": "cached", "model": {"arch": "r3d_18"}})
    assert all(f.description for f in TrainConfig.model_fields.values())
    assert all(f.description for f in AugmentConfig.model_fields.values())
