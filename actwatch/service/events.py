"""The messages the service stage makes: alerts (:class:`Event`, :class:`AlertRecord`) and live overlays.

Example:
    >>> e = Event(camera_id="cam1", track_id=3, label="fighting", score=0.91, start_time=1.0,
    ...           frame_time=2.0, bbox=(1.0, 2.0, 3.0, 4.0), id="abc")
    >>> AlertRecord(e, frame_bgr=None, crops=None).event.label
    'fighting'
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import numpy as np


def new_event_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class Event:
    """An alert: camera ``camera_id``'s track ``track_id`` is doing ``label`` with probability ``score``.

    Times are Unix seconds: ``start_time`` is when the first agreeing window was seen, ``frame_time`` the
    frame that confirmed the alert. ``bbox`` is x1 y1 x2 y2 in frame pixels. ``box`` names the box (MQTT
    ``box_id``) an event came from in a fleet hub's store. How the API shows it (with
    its URLs) is :class:`~actwatch.service.schemas.EventPublic`.
    """

    camera_id: str
    track_id: int
    label: str
    score: float
    start_time: float
    frame_time: float
    bbox: tuple[float, float, float, float]
    id: str = field(default_factory=new_event_id)
    box: str | None = None  # the box that saw it, in a fleet hub's store; None on the box itself


@dataclass(frozen=True, slots=True, eq=False)
class AlertRecord:
    """An event with its evidence, from the pipeline to the sink: ``frame_bgr`` is the confirming frame
    (drawn into the snapshot), ``crops`` the window the model classified: its ``T`` crops ``(H, W, 3)``
    uint8 as the track buffers hold them (the pipeline passes these: no stacked copy of each window on the
    alert thread, and none held while the event waits), or one ``(T, H, W, 3)`` array.

    ``snapshot_jpeg`` and ``crops_png``: that evidence already rendered (the event writer's render
    threads, :meth:`~actwatch.service.sink.EventSink.render_evidence`), which the sink then stores as is.
    """

    event: Event
    frame_bgr: np.ndarray | None = field(repr=False)
    crops: np.ndarray | tuple[np.ndarray, ...] | None = field(repr=False)
    snapshot_jpeg: bytes | None = field(default=None, repr=False)
    crops_png: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class TrackOverlay:
    """One live track box of a frame, with the track's latest label (``None`` until classified) and
    whether it is static (:mod:`actwatch.tracker.static`: shown, never classified).

    Example:
        >>> TrackOverlay(track_id=3, bbox=(1.0, 2.0, 30.0, 60.0), confidence=0.8).label is None
        True
    """

    track_id: int
    bbox: tuple[float, float, float, float]
    confidence: float
    label: str | None = None
    score: float | None = None
    static: bool = False  # the box and crop have not changed for a while (not classified)


@dataclass(frozen=True, slots=True)
class FrameOverlay:
    """The live tracks of one camera frame, for the dashboard's overlay (``frame_time``: Unix seconds).

    Example:
        >>> FrameOverlay("cam1", 2.0, (TrackOverlay(3, (1.0, 2.0, 30.0, 60.0), 0.8),)).tracks[0].track_id
        3
    """

    camera_id: str
    frame_time: float
    tracks: tuple[TrackOverlay, ...]
