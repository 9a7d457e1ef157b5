"""Classifying whole tracks with the real exported ONNX model: windows, padding, averaging."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from actwatch.model.runtime import ActionRuntime
from actwatch.tracker.offline import TrackSequence
from actwatch.tracker.track_predict import format_table, plan_windows, predict_sequence
from tests.conftest import TEST_CLASSES


class CountingRuntime:
    """The real runtime, counting the crops it encodes."""

    def __init__(self, runtime: ActionRuntime) -> None:
        self.runtime = runtime
        self.classes = runtime.classes
        self.spec = runtime.spec
        self.supports_feature_cache = runtime.supports_feature_cache
        self.encoded = 0

    def encode(self, crops: np.ndarray) -> np.ndarray:
        self.encoded += len(crops)
        return self.runtime.encode(crops)

    def classify(self, features: np.ndarray) -> np.ndarray:
        return self.runtime.classify(features)

    def classify_crops(self, windows: np.ndarray) -> np.ndarray:
        return self.runtime.classify_crops(windows)


@pytest.fixture(scope="module")
def runtime(exported_model_dir: Path) -> ActionRuntime:
    return ActionRuntime(exported_model_dir)


def _sequence(n: int, hw: tuple[int, ...], seed: int = 0) -> TrackSequence:
    rng = np.random.default_rng(seed)
    return TrackSequence(
        track_id=4,
        segment=0,
        crops=rng.integers(0, 255, (n, *hw, 3), dtype=np.uint8),
        timestamps=np.arange(n) / 10.0,
        frame_indices=np.arange(n),
        boxes=np.zeros((n, 4), np.float32),
        confidences=np.ones(n, np.float32),
        frames_seen=n,
    )


def _windows(n: int, seq_len: int, stride: int, min_samples: int) -> tuple[np.ndarray, bool]:
    plan = plan_windows(n, seq_len, stride, min_samples)
    assert plan is not None
    return plan.indices, plan.padded


def test_window_indices() -> None:
    idx, padded = _windows(8, 8, 4, 4)
    assert idx.tolist() == [list(range(8))] and not padded
    idx, _ = _windows(13, 8, 4, 4)
    assert idx[:, 0].tolist() == [0, 4, 5]  # the last window always ends at the newest sample
    idx, padded = _windows(5, 8, 4, 4)
    assert idx.tolist() == [[0, 0, 0, 0, 1, 2, 3, 4]] and padded
    assert plan_windows(3, 8, 4, 4) is None
    with pytest.raises(ValueError):
        plan_windows(3, 8, 0, 1)


def test_predict_full_track(runtime: ActionRuntime) -> None:
    spec = runtime.spec
    seq = _sequence(20, tuple(spec.input_size))
    counting = CountingRuntime(runtime)
    pred = predict_sequence(counting, seq, seq_len=spec.seq_len, stride=4, min_samples=4)
    assert counting.encoded == 20  # every crop encoded exactly once, however many windows overlap it
    assert pred.status == "ok" and pred.windows == 4 and pred.samples == 20
    assert list(pred.probabilities) == sorted(pred.probabilities, key=pred.probabilities.__getitem__)[::-1]
    assert set(pred.probabilities) == set(TEST_CLASSES)
    assert sum(pred.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    # The average of the windows' probabilities, computed independently through the whole-model graph.
    idx, _ = _windows(20, spec.seq_len, 4, 4)
    expected = runtime.classify_crops(seq.crops[idx]).mean(axis=0)
    got = np.array([pred.probabilities[c] for c in runtime.classes])
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_short_tracks_are_padded_or_reported(runtime: ActionRuntime) -> None:
    spec = runtime.spec
    hw = tuple(spec.input_size)
    padded = predict_sequence(runtime, _sequence(5, hw), seq_len=spec.seq_len, stride=4, min_samples=4)
    assert padded.status == "padded" and padded.windows == 1
    assert sum(padded.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    short = predict_sequence(runtime, _sequence(2, hw), seq_len=spec.seq_len, stride=4, min_samples=4)
    assert short.status == "too_short" and short.windows == 0 and short.probabilities == {}
    table = format_table([padded, short])
    assert "(too short to classify)" in table and "1*" in table
    assert short.to_json()["status"] == "too_short"
