"""Classify whole person tracks of a video with an exported action model (``actwatch predict``).

Each track's crops are encoded once; windows of ``seq_len`` consecutive samples, every ``stride``
samples (the last window always ends at the track's last sample), are classified and their class
probabilities averaged. A track with fewer than ``seq_len`` but at least ``min_samples`` samples is
padded by repeating its first sample at the front (``status="padded"``: the model sees the person
standing still before the clip starts); shorter tracks are reported as ``too_short``, unclassified.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from actwatch.model.runtime import RecognitionRuntime
from actwatch.model.windows import window_indices
from actwatch.tracker.offline import TrackSequence

Status = Literal["ok", "padded", "too_short"]


@dataclass(frozen=True, slots=True)
class TrackPrediction:
    """The averaged class probabilities of one track (empty when ``status == "too_short"``).

    Example:
        >>> p = TrackPrediction(1, 0, 40, 40, 9, 0.0, 3.9, "ok", {"walking": 0.7, "standing": 0.3})
        >>> p.top(1)
        [('walking', 0.7)]
    """

    track_id: int
    segment: int
    frames_seen: int
    samples: int
    windows: int
    first_time: float
    last_time: float
    status: Status
    probabilities: dict[str, float] = field(default_factory=dict)  # highest first

    def top(self, k: int) -> list[tuple[str, float]]:
        return list(self.probabilities.items())[:k]

    def to_json(self) -> dict[str, Any]:
        return {
            "track_id": self.track_id,
            "segment": self.segment,
            "frames_seen": self.frames_seen,
            "samples": self.samples,
            "windows": self.windows,
            "first_time": round(self.first_time, 3),
            "last_time": round(self.last_time, 3),
            "status": self.status,
            "probabilities": self.probabilities,
        }


@dataclass(frozen=True, slots=True)
class WindowPlan:
    """The windows of one track: sample indices ``(W, seq_len)`` and whether the one window is padded.

    Example:
        >>> plan = plan_windows(10, 4, 3, 2)
        >>> plan.indices.tolist(), plan.padded
        ([[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]], False)
        >>> plan_windows(3, 4, 2, 2).indices.tolist()
        [[0, 0, 1, 2]]
        >>> plan_windows(1, 4, 2, 2) is None
        True
    """

    indices: np.ndarray = field(repr=False)
    padded: bool


def plan_windows(n: int, seq_len: int, stride: int, min_samples: int) -> WindowPlan | None:
    """Windows of ``seq_len`` samples every ``stride`` samples of a track of ``n``; None if too short.

    The last window always ends at the newest sample. A track shorter than ``seq_len`` with at least
    ``min_samples`` samples gets one window padded at the front (see
    :func:`actwatch.model.windows.window_indices`).
    """
    if stride < 1 or seq_len < 1:
        raise ValueError("stride and seq_len must be >= 1")
    if n >= seq_len:
        starts = list(range(0, n - seq_len + 1, stride))
        if starts[-1] != n - seq_len:
            starts.append(n - seq_len)  # the newest samples always get classified
        return WindowPlan(np.stack([window_indices(n, seq_len, offset=s) for s in starts]), padded=False)
    if n >= max(1, min_samples):
        return WindowPlan(window_indices(n, seq_len, short_policy="pad_front")[None, :], padded=True)
    return None


def predict_sequence(
    model: RecognitionRuntime, seq: TrackSequence, *, seq_len: int, stride: int, min_samples: int
) -> TrackPrediction:
    """Classify one track; probabilities averaged over its windows, highest first."""
    plan = plan_windows(seq.length, seq_len, stride, min_samples)
    if plan is None:
        return _prediction(seq, 0, "too_short", {})
    idx, padded = plan.indices, plan.padded
    if model.supports_feature_cache:
        features = model.encode(seq.crops)  # each crop encoded exactly once
        probs = model.classify(features[idx])
    else:
        probs = model.classify_crops(seq.crops[idx])
    mean = np.asarray(probs, np.float64).mean(axis=0)
    order = np.argsort(-mean, kind="stable")
    probabilities = {model.classes[i]: float(mean[i]) for i in order}
    return _prediction(seq, len(idx), "padded" if padded else "ok", probabilities)


def _prediction(seq: TrackSequence, windows: int, status: Status, probabilities: dict[str, float]) -> TrackPrediction:
    return TrackPrediction(
        track_id=seq.track_id,
        segment=seq.segment,
        frames_seen=seq.frames_seen,
        samples=seq.length,
        windows=windows,
        first_time=seq.first_time,
        last_time=seq.last_time,
        status=status,
        probabilities=probabilities,
    )


def format_table(predictions: Sequence[TrackPrediction], *, top_k: int = 3) -> str:
    """A text table: one row per track with its top classes."""
    header = f"{'track':>5}  {'frames':>6}  {'samples':>7}  {'windows':>7}  {'time (s)':<13}  top classes"
    lines = [header]
    for p in predictions:
        span = f"{p.first_time:.1f}-{p.last_time:.1f}"
        mark = "*" if p.status == "padded" else " "
        if p.status == "too_short":
            classes = "(too short to classify)"
        else:
            classes = "  ".join(f"{name} {prob:.2f}" for name, prob in p.top(top_k))
        track = f"{p.track_id}" + (f".{p.segment}" if p.segment else "")
        lines.append(f"{track:>5}  {p.frames_seen:>6}  {p.samples:>7}  {p.windows:>6}{mark}  {span:<13}  {classes}")
    return "\n".join(lines)
