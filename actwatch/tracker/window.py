"""The message the track buffers hand to the action model and the alert rules."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, slots=True, eq=False)
class TrackWindow:
    """The last ``seq_len`` samples of one track, oldest first, with their cached encoder features.

    The features were computed once, when each crop arrived; classifying a window therefore costs
    only the temporal head.

    Example:
        >>> w = TrackWindow("cam1", 7, np.zeros((30, 1280), np.float32), np.arange(30) / 10.0,
        ...                 (0.0, 0.0, 10.0, 20.0), 1.0, 4.0, 42)
        >>> w.length
        30
    """

    camera_id: str
    track_id: int
    features: np.ndarray = field(repr=False)  # (T, D) float32
    timestamps: np.ndarray = field(repr=False)  # (T,) stream seconds of each sample
    box: tuple[float, float, float, float]  # newest box, x1 y1 x2 y2 in frame pixels
    first_seen: float  # wall time the track was first seen
    frame_time: float  # wall time of the newest sample
    frame_index: int  # index of the newest sample's frame
    # each sample's (H, W, 3) uint8 BGR crop, as references: the window does not copy them
    crop_samples: tuple[np.ndarray, ...] | None = field(default=None, repr=False)

    @property
    def length(self) -> int:
        return int(self.features.shape[0])

    @property
    def crops(self) -> np.ndarray | None:
        """The crops as one ``(T, H, W, 3)`` array (evidence, whole-clip models), stacked when asked for."""
        return np.stack(self.crop_samples) if self.crop_samples is not None else None


@dataclass(frozen=True, slots=True, eq=False)
class ReadyWindows:
    """The windows ready for the head in one step, with their features as one ``(B, T, D)`` batch (row
    ``i`` is ``windows[i].features``)."""

    windows: tuple[TrackWindow, ...]
    features: np.ndarray = field(repr=False)  # (B, T, D) float32
