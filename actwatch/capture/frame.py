"""The message the capture stage hands to the tracker."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, slots=True, eq=False)
class Frame:
    """One decoded video frame from one camera.

    ``timestamp`` is the stream's own clock in seconds (container PTS for files, arrival time for live
    sources), used to resample tracks to the model's fps; ``wall_time`` is ``time.time()`` at capture,
    used for events and latency.

    Example:
        >>> f = Frame("cam1", 0, 0.0, 1700000000.0, np.zeros((4, 4, 3), np.uint8))
        >>> f.shape
        (4, 4)
    """

    camera_id: str
    index: int
    timestamp: float
    wall_time: float
    image: np.ndarray = field(repr=False)

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the image."""
        return int(self.image.shape[0]), int(self.image.shape[1])
