"""How the end of a track reaches everything that keeps per-track state.

The pipeline's track phase is the one owner that reports ends: after each
:meth:`~actwatch.tracker.bytetrack.CameraTracker.update` it passes the tracker's
``removed_track_ids`` to every :class:`TrackEndListener` (track buffers, alert state, live labels), and
when a camera is removed it tells them to drop that camera. Nobody else decides that a track ended.

Example:
    >>> class Seen:
    ...     def __init__(self): self.ended = []
    ...     def end_tracks(self, camera_id, track_ids): self.ended += [(camera_id, t) for t in track_ids]
    ...     def drop_camera(self, camera_id): pass
    >>> seen = Seen()
    >>> report_ended([seen], "cam1", (4, 7)); seen.ended
    [('cam1', 4), ('cam1', 7)]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol


class TrackEndListener(Protocol):
    """Keeps state per track; frees it when told a track ended or a camera went away."""

    def end_tracks(self, camera_id: str, track_ids: Sequence[int]) -> object:
        """Free the state of ``camera_id``'s ended tracks ``track_ids``."""
        ...

    def drop_camera(self, camera_id: str) -> object:
        """Free the state of every track of ``camera_id`` (the camera was removed)."""
        ...


def report_ended(listeners: Iterable[TrackEndListener], camera_id: str, track_ids: Sequence[int]) -> None:
    """Tell every listener that ``camera_id``'s tracks ``track_ids`` ended (nothing if none did)."""
    if track_ids:
        for listener in listeners:
            listener.end_tracks(camera_id, track_ids)


def report_camera_dropped(listeners: Iterable[TrackEndListener], camera_id: str) -> None:
    """Tell every listener that ``camera_id`` and all its tracks are gone."""
    for listener in listeners:
        listener.drop_camera(camera_id)
