"""The one canonical detections type. Backends (Ultralytics results, ONNX outputs) convert at the edge."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True, eq=False)
class Detections:
    """Boxes found in one frame, in pixel ``x1, y1, x2, y2`` of the original image.

    ``track_id`` is ``-1`` for detections not (yet) associated with a track.

    Example:
        >>> d = Detections.empty()
        >>> len(d), d.xyxy.shape
        (0, (0, 4))
    """

    xyxy: np.ndarray = field(repr=False)  # (N, 4) float32
    confidence: np.ndarray = field(repr=False)  # (N,) float32
    class_id: np.ndarray = field(repr=False)  # (N,) int64
    track_id: np.ndarray = field(repr=False)  # (N,) int64, -1 = untracked

    def __post_init__(self) -> None:
        n = len(self.xyxy)
        if self.xyxy.shape != (n, 4) or not (len(self.confidence) == len(self.class_id) == len(self.track_id) == n):
            raise ValueError(
                f"inconsistent detections: xyxy {self.xyxy.shape}, confidence {self.confidence.shape}, "
                f"class_id {self.class_id.shape}, track_id {self.track_id.shape}"
            )

    def __len__(self) -> int:
        return len(self.xyxy)

    @classmethod
    def empty(cls) -> Detections:
        return cls(
            xyxy=np.zeros((0, 4), np.float32),
            confidence=np.zeros((0,), np.float32),
            class_id=np.zeros((0,), np.int64),
            track_id=np.zeros((0,), np.int64),
        )

    @classmethod
    def from_arrays(
        cls,
        xyxy: Any,
        confidence: Any,
        class_id: Any,
        track_id: Any | None = None,
    ) -> Detections:
        """Build from array-likes, fixing dtypes; ``track_id=None`` means untracked."""
        xy = np.asarray(xyxy, np.float32).reshape(-1, 4)
        tid = np.full(len(xy), -1, np.int64) if track_id is None else np.asarray(track_id, np.int64).reshape(-1)
        return cls(
            xyxy=xy,
            confidence=np.asarray(confidence, np.float32).reshape(-1),
            class_id=np.asarray(class_id, np.int64).reshape(-1),
            track_id=tid,
        )

    def select(self, mask: np.ndarray) -> Detections:
        """The subset where the boolean ``mask`` is true (or the given integer indices)."""
        return Detections(self.xyxy[mask], self.confidence[mask], self.class_id[mask], self.track_id[mask])


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of boxes ``x1, y1, x2, y2`` in the last axis of ``a`` and ``b``, which
    broadcast against each other: ``box_iou(a[:, None], b[None])`` gives every pair.

    Example:
        >>> a, b = np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10], [5, 0, 15, 10]])
        >>> box_iou(a[:, None], b[None]).round(3).tolist()
        [[1.0, 0.333]]
    """
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / np.maximum(area_a + area_b - inter, 1e-9)
