"""The durable outbox: a table beside the events, and one delivery thread per target.

An event is stored and enqueued in **one** transaction (:meth:`Outbox.enqueue` runs inside
:meth:`~actwatch.service.store.EventStore.add`): either both happen or neither. Each target's
:class:`DeliveryWorker` reads its rows oldest first, hands each to the target, and deletes it only once
the target acknowledged it (MQTT PUBACK, HTTP 2xx). A failure is counted and retried with exponential
backoff, always the same (oldest) row first: delivery is in order, and a restart resends what was not
acknowledged (duplicates are possible and carry the event id; losses are not, up to the bound).

Past ``outbox.max_pending`` rows for one target the oldest are dropped and counted
(``actwatch_outbox_dropped_total``): a target gone for weeks must not fill the disk.

Example:
    >>> import tempfile, pathlib
    >>> from actwatch.delivery.settings import OutboxSettings
    >>> from actwatch.service.store import EventStore
    >>> store = EventStore("sqlite://", pathlib.Path(tempfile.mkdtemp()))
    >>> outbox = Outbox(store, OutboxSettings(max_pending=2))
    >>> with store.transaction() as conn:
    ...     for i in range(3):
    ...         _ = outbox.enqueue(conn, ["mqtt"], f"e{i}", {"id": f"e{i}"})
    >>> [item.event_id for item in outbox.pending("mqtt")], outbox.backlog("mqtt").pending
    (['e1', 'e2'], 2)
    >>> outbox.ack(outbox.pending("mqtt")[0]); outbox.backlog("mqtt").pending
    1
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa

from actwatch.delivery.settings import OutboxSettings
from actwatch.service.store import EventStore

log = logging.getLogger(__name__)


class DeliveryError(Exception):
    """A target did not acknowledge an item; the message says why (never holds a secret)."""


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One event waiting for one target: ``seq`` orders the outbox, ``payload`` is the event JSON."""

    seq: int
    target: str
    event_id: str
    payload: dict[str, Any]
    created_at: float


@dataclass(frozen=True, slots=True)
class Backlog:
    """How many items wait for a target and when the oldest was enqueued (``None``: nothing waits)."""

    pending: int
    oldest_created_at: float | None


def _outbox_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "outbox",
        metadata,
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("target", sa.String(80), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Index("ix_outbox_target_seq", "target", "seq"),
    )


class Outbox:
    """The ``outbox`` table in the event store's database. Thread-safe."""

    def __init__(self, store: EventStore, settings: OutboxSettings, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self.settings = settings
        self._clock = clock
        self._table = _outbox_table(sa.MetaData())
        self._table.create(store.engine, checkfirst=True)

    def enqueue(
        self, conn: sa.Connection, targets: Sequence[str], event_id: str, payload: dict[str, Any]
    ) -> dict[str, int]:
        """Add ``payload`` for each of ``targets`` in the caller's transaction ``conn``; returns, per target,
        how many old items were dropped to keep it under ``max_pending`` (targets with none are left out)."""
        t = self._table
        now = self._clock()
        text = json.dumps(payload, separators=(",", ":"))
        dropped: dict[str, int] = {}
        for target in targets:
            conn.execute(t.insert().values(target=target, event_id=event_id, payload=text, created_at=now))
            count = int(conn.execute(sa.select(sa.func.count()).where(t.c.target == target)).scalar_one())
            excess = count - self.settings.max_pending
            if excess > 0:
                oldest = sa.select(t.c.seq).where(t.c.target == target).order_by(t.c.seq).limit(excess)
                conn.execute(t.delete().where(t.c.seq.in_(oldest.scalar_subquery())))
                dropped[target] = excess
                log.warning(
                    "outbox of %s is over its bound (%d): dropped the %d oldest", target, count - excess, excess
                )
        return dropped

    def pending(self, target: str, limit: int = 100) -> list[OutboxItem]:
        """The oldest ``limit`` items waiting for ``target``, oldest first."""
        t = self._table
        with self._store.engine.connect() as conn:
            rows = conn.execute(sa.select(t).where(t.c.target == target).order_by(t.c.seq).limit(limit)).all()
        return [OutboxItem(r.seq, r.target, r.event_id, json.loads(r.payload), float(r.created_at)) for r in rows]

    def ack(self, item: OutboxItem) -> None:
        """``item`` was acknowledged by its target: it leaves the outbox."""
        with self._store.transaction() as conn:
            conn.execute(self._table.delete().where(self._table.c.seq == item.seq))

    def backlog(self, target: str) -> Backlog:
        t = self._table
        with self._store.engine.connect() as conn:
            row = conn.execute(
                sa.select(sa.func.count(), sa.func.min(t.c.created_at)).where(t.c.target == target)
            ).one()
        return Backlog(int(row[0]), None if row[1] is None else float(row[1]))


class Target(Protocol):
    """Where a :class:`DeliveryWorker` delivers: MQTT or a webhook."""

    name: str

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def deliver(self, item: OutboxItem) -> None:
        """Return once the target acknowledged ``item``; raise :class:`DeliveryError` otherwise."""
        ...


class DeliveryCounters(Protocol):
    """What a worker counts (:class:`~actwatch.service.metrics.ServiceMetrics`)."""

    def count_delivered(self, target: str) -> None: ...
    def count_delivery_failure(self, target: str) -> None: ...


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """A target's delivery state for ``/readyz``: ``ok`` or ``failing`` with the last error."""

    state: str
    last_error: str | None
    delivered: int
    failures: int


class DeliveryWorker:
    """One thread delivering one target's outbox items in order, with exponential backoff on failure."""

    def __init__(self, outbox: Outbox, target: Target, counters: DeliveryCounters) -> None:
        self._outbox = outbox
        self.target = target
        self._counters = counters
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_error: str | None = None
        self._delivered = 0
        self._failures = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"delivery-{self.target.name}", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """New items were enqueued."""
        self._wake.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def status(self) -> WorkerStatus:
        error = self._last_error
        return WorkerStatus("failing" if error else "ok", error, self._delivered, self._failures)

    def _run(self) -> None:
        settings = self._outbox.settings
        delay = settings.retry_initial_s
        while not self._stop.is_set():
            self._wake.clear()
            try:
                items = self._outbox.pending(self.target.name)
            except Exception as exc:  # the database is busy or gone: wait and retry
                log.warning("outbox of %s unreadable: %s", self.target.name, exc)
                items, failed = [], True
            else:
                failed = False
            for item in items:
                if self._stop.is_set():
                    return
                try:
                    self.target.deliver(item)
                    # Counted once the target acknowledged it (a failed delete below only means a resend).
                    self._delivered += 1
                    self._counters.count_delivered(self.target.name)
                    self._outbox.ack(item)
                except Exception as exc:
                    failed = True
                    self._failures += 1
                    self._counters.count_delivery_failure(self.target.name)
                    if str(exc) != self._last_error:
                        log.warning("delivery to %s failed (will retry): %s", self.target.name, exc)
                    self._last_error = str(exc) or type(exc).__name__
                    break
                self._last_error = None
            if failed:
                self._stop.wait(delay)
                delay = min(delay * 2, settings.retry_max_s)
                continue
            delay = settings.retry_initial_s
            if not items:
                self._wake.wait()
