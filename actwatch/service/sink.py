"""Where the pipeline thread sends what it finds: events (stored, counted, broadcast) and live tracks.

Example:
    >>> import tempfile, pathlib
    >>> from actwatch.service.broadcast import Broadcaster
    >>> from actwatch.service.metrics import ServiceMetrics
    >>> import numpy as np
    >>> from actwatch.service.events import Event
    >>> from actwatch.service.store import EventStore
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> sink = EventSink(EventStore("sqlite://", tmp), Broadcaster(), ServiceMetrics())
    >>> e = Event("cam1", 4, "fall", 0.8, 1.0, 2.0, (1.0, 1.0, 20.0, 30.0), id="ev1")
    >>> sink.emit_event(AlertRecord(e, np.zeros((48, 64, 3), np.uint8), None)).snapshot_url
    '/events/ev1/snapshot'
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

import numpy as np
import sqlalchemy as sa

from actwatch.service.broadcast import Broadcaster
from actwatch.service.clips import ClipRecorder
from actwatch.service.events import AlertRecord, FrameOverlay
from actwatch.service.evidence import encode_crops_strip, render_snapshot
from actwatch.service.live_frames import LiveFrames
from actwatch.service.messages import EventMessage, TracksMessage
from actwatch.service.metrics import ServiceMetrics
from actwatch.service.schemas import EventPublic
from actwatch.service.store import EventRecord, EventStore

log = logging.getLogger(__name__)


def render_alert_evidence(alert: AlertRecord, *, keep_crops: bool) -> AlertRecord:
    """``alert`` with its snapshot JPEG (and crops PNG strip when ``keep_crops``) rendered and its arrays
    dropped: what a service's sink stores, or a compute process (:mod:`actwatch.service.shard_worker`) sends."""
    event, frame = alert.event, alert.frame_bgr
    jpeg = render_snapshot(frame, event.bbox, event.label, event.score) if frame is not None else None
    png = encode_crops_strip(alert.crops) if alert.crops is not None and keep_crops else None
    return AlertRecord(event, None, None, snapshot_jpeg=jpeg, crops_png=png)


class Outbox(Protocol):
    """Where stored events are queued for delivery (:class:`~actwatch.delivery.service.DeliveryService`)."""

    def enqueue(self, conn: sa.Connection, record: EventRecord) -> None: ...
    def notify(self) -> None: ...


class EventSink:
    """Called from the pipeline thread; every method returns quickly and never raises for I/O trouble.

    :meth:`emit_event` stores first (snapshot JPEG, crops, row, and the ``outbox`` entries for MQTT and
    webhooks in the row's transaction), starts the event's clip, then counts and
    broadcasts. :meth:`emit_tracks` keeps the frame as the camera's newest (``live_frames``: for
    ``latest.jpg`` and MJPEG, encoded only when asked), offers it to the clip ring (``clips``), and
    broadcasts the boxes only if a client subscribed to them. If storing fails the error is logged and
    counted (``failures``, ``actwatch_event_store_failures_total``) and the
    event is still broadcast, with ``snapshot_url``/``crops_url`` null: an alert is never lost silently.

    Example:
        >>> import tempfile, pathlib
        >>> from actwatch.service.metrics import ServiceMetrics
        >>> sink = EventSink(EventStore("sqlite://", pathlib.Path(tempfile.mkdtemp())), Broadcaster(),
        ...                  ServiceMetrics())
        >>> from actwatch.service.events import TrackOverlay
        >>> sink.emit_tracks(FrameOverlay("cam1", 2.0, (TrackOverlay(3, (1.0, 2.0, 30.0, 60.0), 0.8),)))
        >>> sink.failures
        0
    """

    def __init__(
        self,
        store: EventStore,
        broadcaster: Broadcaster,
        metrics: ServiceMetrics,
        *,
        outbox: Outbox | None = None,
        live_frames: LiveFrames | None = None,
        clips: ClipRecorder | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._outbox = outbox
        self._broadcaster = broadcaster
        self._metrics = metrics
        self._live_frames = live_frames
        self._clips = clips
        self._clock = clock
        self.failures = 0

    def render_evidence(self, alert: AlertRecord) -> AlertRecord:
        """``alert`` with its snapshot JPEG and crops PNG rendered (thread-safe: OpenCV's encoders release
        the GIL, so several threads render side by side) and its arrays dropped."""
        return render_alert_evidence(alert, keep_crops=self._store.keep_crops)

    def emit_event(self, alert: AlertRecord) -> EventPublic:
        """Store, count and broadcast ``alert.event`` with its evidence; return the event as broadcast."""
        event = alert.event
        stored_snapshot = stored_crops = False
        try:
            frame = alert.frame_bgr
            jpeg = alert.snapshot_jpeg
            if jpeg is None and frame is not None:
                jpeg = render_snapshot(frame, event.bbox, event.label, event.score)
            enqueue = self._outbox.enqueue if self._outbox is not None else None
            record = self._store.add(event, jpeg, alert.crops, crops_png=alert.crops_png, in_transaction=enqueue)
            if self._outbox is not None:
                self._outbox.notify()
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
        if self._clips is not None:
            try:
                self._clips.start(event.id, event.camera_id, event.frame_time)
            except Exception:
                log.exception("could not start the clip of event %s", event.id)
        self._metrics.count_event(event.camera_id, event.label)
        self._metrics.observe_frame_to_event(self._clock() - event.frame_time)
        public = EventPublic.build(event, snapshot=stored_snapshot, crops=stored_crops)
        try:
            self._broadcaster.publish(EventMessage(public))
        except Exception:  # a broken broadcast must not take the pipeline thread down
            log.exception("could not broadcast event %s", event.id)
        return public

    @property
    def broadcaster(self) -> Broadcaster:
        """Where events and track boxes go to WebSocket clients (compute processes ask it whose boxes
        are wanted)."""
        return self._broadcaster

    def emit_tracks(self, overlay: FrameOverlay, image: np.ndarray | None = None) -> None:
        """Keep ``image`` (the processed frame) as the camera's newest and for clips; broadcast the tracks
        of the frame to the clients subscribed to them (nothing is serialised when none is)."""
        try:
            if image is not None:
                if self._live_frames is not None:
                    self._live_frames.put(image, overlay)
                if self._clips is not None:
                    self._clips.add_frame(overlay.camera_id, overlay.frame_time, image)
            if self._broadcaster.track_interest().wants(overlay.camera_id):
                self._broadcaster.publish(TracksMessage(overlay))
        except Exception:
            log.exception("could not broadcast tracks of %s", overlay.camera_id)
