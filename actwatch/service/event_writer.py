"""The bounded event writer: storing events and rendering their evidence, off the compute path.

The alert phase hands each :class:`~actwatch.service.events.AlertRecord` to an :class:`EventWriter`
and goes on at once; the writer's own thread renders the snapshot JPEG, writes the crops and the row,
counts and broadcasts (the wrapped sink's :meth:`emit_event`). Under back-pressure it drops the least
important work first: while ``max_pending_evidence`` records with evidence are waiting, a new record
loses its snapshot frame and crops (counted in :attr:`EventWriter.evidence_dropped`); the event itself
is always written. Live track boxes go straight through (a broadcast never blocks).

Example:
    >>> import numpy as np
    >>> from actwatch.service.events import Event
    >>> class Slow:
    ...     def __init__(self): self.seen = []
    ...     def emit_event(self, alert): self.seen.append(alert.frame_bgr is not None)
    ...     def emit_tracks(self, overlay, image=None): pass
    >>> inner = Slow()
    >>> writer = EventWriter(inner, max_pending_evidence=1, start=False)  # not started: nothing is written
    >>> for i in range(3):
    ...     writer.emit_event(AlertRecord(Event("cam1", i, "fall", 0.9, 0.0, 1.0, (0, 0, 1, 1)),
    ...                                   np.zeros((4, 4, 3), np.uint8), None))
    >>> writer.start(); writer.flush(); writer.close()
    True
    >>> inner.seen, writer.evidence_dropped, writer.written
    ([True, False, False], 2, 3)
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time

import numpy as np

from actwatch.service.events import AlertRecord, FrameOverlay
from actwatch.service.stages import Sink

log = logging.getLogger(__name__)


class EventWriter:
    """A :class:`~actwatch.service.stages.Sink` that writes events through ``sink`` in its own thread."""

    def __init__(self, sink: Sink, *, max_pending_evidence: int = 32, start: bool = True) -> None:
        if max_pending_evidence < 0:
            raise ValueError("max_pending_evidence must be >= 0")
        self._sink = sink
        self._max_evidence = max_pending_evidence
        self._pending: collections.deque[AlertRecord] = collections.deque()
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self.evidence_dropped = 0
        self.written = 0
        self.busy_s = 0.0
        if start:
            self.start()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="actwatch-event-writer", daemon=True)
            self._thread.start()

    def emit_event(self, alert: AlertRecord) -> None:
        """Queue ``alert`` (never blocks, never drops the event; may drop its evidence, counted)."""
        with self._cond:
            with_evidence = sum(1 for a in self._pending if a.frame_bgr is not None or a.crops is not None)
            if with_evidence >= self._max_evidence and (alert.frame_bgr is not None or alert.crops is not None):
                alert = dataclasses.replace(alert, frame_bgr=None, crops=None)
                self.evidence_dropped += 1
            self._pending.append(alert)
            self._cond.notify_all()

    def emit_tracks(self, overlay: FrameOverlay, image: np.ndarray | None = None) -> None:
        self._sink.emit_tracks(overlay, image)

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._pending)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued event was written; whether that happened within ``timeout``."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy, timeout=timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then end the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._pending) or self._closed)
                if not self._pending:
                    return  # closed and drained
                alert = self._pending.popleft()
                self._busy = True
            start = time.perf_counter()
            try:
                self._sink.emit_event(alert)
            except Exception:  # the sink logs its own I/O trouble; this keeps the writer alive regardless
                log.exception("could not write event %s", alert.event.id)
            with self._cond:
                self.busy_s += time.perf_counter() - start
                self.written += 1
                self._busy = False
                self._cond.notify_all()
