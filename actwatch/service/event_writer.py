"""The bounded event writer: storing events and rendering their evidence, off the compute path.

The alert phase hands each :class:`~actwatch.service.events.AlertRecord` to an :class:`EventWriter`
and goes on at once; the writer's own thread renders the snapshot JPEG, writes the crops and the row,
counts and broadcasts (the wrapped sink's :meth:`emit_event`). Under back-pressure it drops the least
important work first: while ``max_pending_evidence`` records with evidence are waiting, a new record
loses its snapshot frame and crops (counted in :attr:`EventWriter.evidence_dropped`); the event itself
is always written. Live track boxes go straight through (a broadcast never blocks).

With ``render_workers`` (and a sink that can render ahead,
:class:`~actwatch.service.stages.EvidenceRenderer`), each event's snapshot JPEG and crops PNG are
rendered by a pool of that many threads as soon as the event arrives, side by side (OpenCV's encoders
release the GIL); the writer's thread still stores and broadcasts the events one by one, in order. Its
own rendering (a crops strip of 30 crops is about 15 ms) was what bounded the events per second it writes.

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
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from actwatch.service.events import AlertRecord, FrameOverlay
from actwatch.service.stages import EvidenceRenderer, Sink

log = logging.getLogger(__name__)


class EventWriter:
    """A :class:`~actwatch.service.stages.Sink` that writes events through ``sink`` in its own thread."""

    def __init__(
        self, sink: Sink, *, max_pending_evidence: int = 32, render_workers: int = 0, start: bool = True
    ) -> None:
        if max_pending_evidence < 0:
            raise ValueError("max_pending_evidence must be >= 0")
        if render_workers < 0:
            raise ValueError("render_workers must be >= 0")
        self._sink = sink
        self._max_evidence = max_pending_evidence
        self._renderer: EvidenceRenderer | None = None
        self._pool: ThreadPoolExecutor | None = None
        if render_workers and isinstance(sink, EvidenceRenderer):
            self._renderer = sink
            self._pool = ThreadPoolExecutor(render_workers, "actwatch-evidence")
        # each event, with its evidence being rendered (None: the sink renders it when it stores it)
        self._pending: collections.deque[tuple[AlertRecord, Future[AlertRecord] | None]] = collections.deque()
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
            with_evidence = sum(1 for a, _ in self._pending if _has_evidence(a))
            if with_evidence >= self._max_evidence and _has_evidence(alert):
                alert = dataclasses.replace(alert, frame_bgr=None, crops=None)
                self.evidence_dropped += 1
            rendering = None
            if self._pool is not None and self._renderer is not None and _has_evidence(alert):
                rendering = self._pool.submit(self._renderer.render_evidence, alert)
            self._pending.append((alert, rendering))
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
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._pending) or self._closed)
                if not self._pending:
                    return  # closed and drained
                alert, rendering = self._pending.popleft()
                self._busy = True
            start = time.perf_counter()
            if rendering is not None:
                try:
                    alert = rendering.result()
                except Exception:  # the sink renders it again as it stores it, and says what went wrong
                    log.warning("could not render the evidence of event %s ahead", alert.event.id, exc_info=True)
            try:
                self._sink.emit_event(alert)
            except Exception:  # the sink logs its own I/O trouble; this keeps the writer alive regardless
                log.exception("could not write event %s", alert.event.id)
            with self._cond:
                self.busy_s += time.perf_counter() - start
                self.written += 1
                self._busy = False
                self._cond.notify_all()


def _has_evidence(alert: AlertRecord) -> bool:
    return alert.frame_bgr is not None or alert.crops is not None
