"""The latest label of every live track, for the dashboard's overlay of track boxes.

The classify phase records each classified window's best class (:meth:`LiveLabels.record`); the emit
phase turns a frame's tracked boxes into a :class:`~actwatch.service.events.FrameOverlay` with those
labels (:meth:`LiveLabels.overlay`). Labels are freed when the track phase reports the track's end (a
:class:`~actwatch.tracker.track_end.TrackEndListener`).

Example:
    >>> import numpy as np
    >>> from actwatch.tracker.detections import Detections
    >>> labels = LiveLabels()
    >>> labels.record("cam1", 3, "walking", 0.8123)
    >>> tracked = Detections(np.array([[1.04, 2.0, 30.0, 60.0]], np.float32), np.array([0.9], np.float32),
    ...                      np.array([0]), np.array([3]))
    >>> labels.overlay("cam1", 2.0, tracked).tracks
    (TrackOverlay(track_id=3, bbox=(1.0, 2.0, 30.0, 60.0), confidence=0.9, label='walking', score=0.812, static=False),)
    >>> labels.end_tracks("cam1", [3]); labels.overlay("cam1", 2.1, tracked).tracks[0].label is None
    True
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from actwatch.service.events import FrameOverlay, TrackOverlay
from actwatch.tracker.detections import Detections


class LiveLabels:
    """Latest ``(label, score)`` per ``(camera_id, track_id)``; used by the compute thread only."""

    def __init__(self) -> None:
        self._labels: dict[tuple[str, int], tuple[str, float]] = {}

    def __len__(self) -> int:
        return len(self._labels)

    def record(self, camera_id: str, track_id: int, label: str, score: float) -> None:
        """Remember the class a track was last classified as."""
        self._labels[(camera_id, track_id)] = (label, score)

    def overlay(
        self, camera_id: str, frame_time: float, tracked: Detections, static: Iterable[bool] | None = None
    ) -> FrameOverlay:
        """The frame's tracked boxes with their tracks' labels (rounded for the wire); ``static``: one flag
        per row of ``tracked``, whether that track is static (none by default)."""
        rows = []
        flags = [False] * len(tracked) if static is None else [bool(flag) for flag in static]
        for box, conf, track_id, is_static in zip(
            tracked.xyxy, tracked.confidence, tracked.track_id, flags, strict=True
        ):
            label, score = self._labels.get((camera_id, int(track_id)), (None, None))
            x1, y1, x2, y2 = (round(float(v), 1) for v in box)
            rows.append(
                TrackOverlay(
                    track_id=int(track_id),
                    bbox=(x1, y1, x2, y2),
                    confidence=round(float(conf), 3),
                    label=label,
                    score=None if score is None else round(score, 3),
                    static=is_static,
                )
            )
        return FrameOverlay(camera_id, frame_time, tuple(rows))

    def end_tracks(self, camera_id: str, track_ids: Sequence[int]) -> None:
        for track_id in track_ids:
            self._labels.pop((camera_id, int(track_id)), None)

    def drop_camera(self, camera_id: str) -> None:
        for key in [k for k in self._labels if k[0] == camera_id]:
            del self._labels[key]
