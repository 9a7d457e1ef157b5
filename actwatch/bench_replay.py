"""The detector's answers replayed (``actwatch bench --replay-detections``): a run then measures everything
but the detector, the CPU's stand-in for what a GPU leaves to the host."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from actwatch.service.stages import Detector
    from actwatch.tracker.detections import Detections


class ReplayedDetector:
    """The detector's answers for the first ``frames`` frames of ``video``, computed before the run and
    looked up by each frame's content: a run then measures everything but the detector, which is what a
    GPU leaves to the host (``actwatch bench --replay-detections``, the CPU's stand-in for a GPU run). A
    frame it has not seen goes to ``detector`` (counted in ``misses``).
    """

    def __init__(self, detector: Detector, video: Path, frames: int, batch: int = 8) -> None:
        from actwatch.capture.video_file import read_video

        self._detector = detector
        self._known: dict[bytes, Detections] = {}
        self.misses = 0
        images = (frame.image for frame in read_video(video, max_frames=frames))
        while chunk := list(itertools.islice(images, batch)):
            for image, found in zip(chunk, detector.detect(chunk), strict=True):
                self._known[self.key(image)] = found

    @staticmethod
    def key(image: np.ndarray) -> bytes:
        """A frame's identity: a digest of every 8th pixel (the clip's frames all differ there)."""
        return hashlib.blake2b(np.ascontiguousarray(image[::8, ::8]).tobytes(), digest_size=16).digest()

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        out = []
        for image in images:
            found = self._known.get(self.key(image))
            if found is None:
                self.misses += 1
                found = self._detector.detect([image])[0]
            out.append(found)
        return out
