"""Where the pipeline thread sends what it finds: events (stored, counted, broadcast) and live tracks.

Example:
    >>> import tempfile, pathlib
    >>> from actwatch.service.broadcast import Broadcaster
    >>> from actwatch.service.metrics import ServiceMetrics
    >>> from actwatch.service.store import EventStore
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> sink = EventSink(EventStore("sqlite://", tmp), Broadcaster(), ServiceMetrics())
    >>> e = Event("cam1", 4, "fall", 0.8, 1.0, 2.0, (1.0, 1.0, 20.0, 30.0), id="ev1")
    >>> sink.emit_event(e, np.zeros((48, 64, 3), np.uint8), None)["snapshot_url"]
    '/events/ev1/snapshot'
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from actwatch.service.broadcast import Broadcaster
from actwatch.service.events import Event
from actwatch.service.metrics import ServiceMetrics
from actwatch.service.schemas import EventPublic
from actwatch.service.store import EventStore, render_snapshot

log = logging.getLogger(__name__)


class EventSink:
    """Called from the pipeline thread; every method returns quickly and never raises for I/O trouble.

    :meth:`emit_event` stores first (snapshot JPEG, crops, row), then counts and broadcasts. If storing
    fails the error is logged and counted (``failures``, ``actwatch_event_store_failures_total``) and the
    event is still broadcast, with ``snapshot_url``/``crops_url`` null: an alert is never lost silently.

    Example:
        >>> import tempfile, pathlib
        >>> from actwatch.service.metrics import ServiceMetrics
        >>> sink = EventSink(EventStore("sqlite://", pathlib.Path(tempfile.mkdtemp())), Broadcaster(),
        ...                  ServiceMetrics())
        >>> sink.emit_tracks("cam1", 2.0, [{"track_id": 3, "bbox": [1, 2, 30, 60]}]); sink.failures
        0
    """

    def __init__(
        self,
        store: EventStore,
        broadcaster: Broadcaster,
        metrics: ServiceMetrics,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._broadcaster = broadcaster
        self._metrics = metrics
        self._clock = clock
        self.failures = 0

    def emit_event(self, event: Event, frame_bgr: np.ndarray | None, crops: np.ndarray | None) -> dict[str, Any]:
        """Store, count and broadcast ``event``; ``frame_bgr`` is the confirming frame (for the snapshot),
        ``crops`` the ``(T, H, W, 3)`` uint8 evidence. Returns the event as broadcast."""
        stored_snapshot = stored_crops = False
        try:
            jpeg = render_snapshot(frame_bgr, event.bbox, event.label, event.score) if frame_bgr is not None else None
            record = self._store.add(event, jpeg, crops)
            stored_snapshot = record.snapshot_path is not None
            stored_crops = record.crops_path is not None
        except Exception:
            self.failures += 1
            self._metrics.count_store_failure()
            log.exception(
                "could not store event %s (%s on %s); broadcasting it anyway",
                event.id,
                event.label,
                event.camera_id,
            )
        self._metrics.count_event(event.camera_id, event.label)
        self._metrics.observe_frame_to_event(self._clock() - event.frame_time)
        payload = EventPublic.build(event, snapshot=stored_snapshot, crops=stored_crops).model_dump(mode="json")
        try:
            self._broadcaster.publish({"type": "event", "event": payload})
        except Exception:  # a broken broadcast must not take the pipeline thread down
            log.exception("could not broadcast event %s", event.id)
        return payload

    def emit_tracks(self, camera_id: str, frame_time: float, tracks: Sequence[Mapping[str, Any]]) -> None:
        """Broadcast the live tracks of one frame (``[{"track_id": 3, "bbox": [x1, y1, x2, y2], ...}]``)
        to the clients subscribed to tracks."""
        try:
            self._broadcaster.publish(
                {"type": "tracks", "camera_id": camera_id, "frame_time": frame_time, "tracks": list(tracks)}
            )
        except Exception:
            log.exception("could not broadcast tracks of %s", camera_id)
