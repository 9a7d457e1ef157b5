"""Scene cuts: a camera's picture changed completely (a PTZ preset, a switched input, an edited file).

A track cannot go on across a cut: its window would mix two scenes. Each processed frame is reduced to a
small grey thumbnail, normalised to zero mean and unit spread (so a change of exposure or light is not a
cut), and compared with the camera's previous one; a mean absolute difference above
:attr:`SceneCutSettings.threshold` is a cut, and the camera's tracker ends every track there (the pipeline
reports those ends to every :class:`~actwatch.tracker.track_end.TrackEndListener`).

Measured on vtest.avi (32x24 thumbnails): consecutive frames differ by 0.02 (median) to 0.07 (max), any
two frames of the clip, even a minute apart, by at most 0.19, the same frame darkened by 20% by 0.01,
while a cut to the mirrored clip is at least 0.82 and to the upside-down clip at least 1.05. The default
threshold, 0.5, sits between.

Example (a frame, a darker copy of it, then its mirror image):
    >>> rng = np.random.default_rng(0)
    >>> frame = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    >>> cuts = SceneCuts(SceneCutSettings())
    >>> [cuts.is_cut("cam1", f) for f in (frame, (frame * 0.8).astype(np.uint8), frame[:, ::-1])]
    [False, False, True]
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from pydantic import ConfigDict, Field

from actwatch.settings import StrictModel

THUMBNAIL_WH = (32, 24)
"""Width and height of the normalised grey thumbnail two frames are compared by."""


class SceneCutSettings(StrictModel):
    """When a camera's frame counts as a new scene (every track of the camera ends there).

    Example:
        >>> SceneCutSettings().threshold
        0.5
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="End every track of a camera when its picture changes completely.")
    threshold: float = Field(
        0.5,
        gt=0.0,
        description="Mean absolute difference of two consecutive processed frames' normalised grey thumbnails "
        "(zero mean, unit spread) above which the second starts a new scene. vtest.avi: at most 0.19 within "
        "the clip, at least 0.82 to its mirror image.",
    )


def frame_signature(image: np.ndarray) -> np.ndarray:
    """The frame's small grey thumbnail with zero mean and unit spread (a flat frame: all zeros).

    Example:
        >>> s = frame_signature(np.full((48, 64, 3), 200, np.uint8))
        >>> s.shape, float(np.abs(s).max())
        ((24, 32), 0.0)
    """
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    small = cv2.resize(grey, THUMBNAIL_WH, interpolation=cv2.INTER_AREA).astype(np.float32)
    # A spread floor of one grey level: a flat or nearly flat frame is not blown up into noise.
    return (small - small.mean()) / max(float(small.std()), 1.0)


def signature_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two :func:`frame_signature` thumbnails."""
    return float(np.abs(a - b).mean())


class SceneCuts:
    """The previous frame's signature per camera; a track-end listener (dropping a camera forgets it)."""

    def __init__(self, settings: SceneCutSettings) -> None:
        self.settings = settings
        self._previous: dict[str, np.ndarray] = {}
        self.cuts = 0  # cuts seen, all cameras

    def is_cut(self, camera_id: str, image: np.ndarray) -> bool:
        """Whether ``image`` (the camera's next processed frame) starts a new scene; the first never does."""
        if not self.settings.enabled:
            return False
        signature = frame_signature(image)
        previous = self._previous.get(camera_id)
        self._previous[camera_id] = signature
        if previous is None or previous.shape != signature.shape:
            return False
        cut = signature_distance(previous, signature) > self.settings.threshold
        self.cuts += int(cut)
        return cut

    def end_tracks(self, camera_id: str, track_ids: Sequence[int]) -> None:
        """Nothing per track here; present so this is a track-end listener like the others."""

    def drop_camera(self, camera_id: str) -> None:
        self._previous.pop(camera_id, None)
