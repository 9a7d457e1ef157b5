"""What ``create_app`` runs for delivery: the outbox and one worker thread per target.

:meth:`DeliveryService.enqueue` is the ``in_transaction`` hook of
:meth:`~actwatch.service.store.EventStore.add` (the sink passes it), :meth:`DeliveryService.notify`
wakes the workers after the commit. Nothing here blocks the compute thread: enqueueing is one insert
per target in the event's own transaction; publishing and HTTP happen on the workers' threads.

Example:
    >>> import tempfile, pathlib
    >>> from actwatch.config import AppConfig
    >>> from actwatch.service.metrics import ServiceMetrics
    >>> from actwatch.service.store import EventStore
    >>> cfg = AppConfig(webhooks={"targets": [{"name": "ops", "url": "http://127.0.0.1:9/hook"}]})
    >>> store = EventStore("sqlite://", pathlib.Path(tempfile.mkdtemp()))
    >>> delivery = DeliveryService.from_config(cfg, store, ServiceMetrics())
    >>> delivery.target_names
    ('webhook:ops',)
    >>> store.close()
"""

from __future__ import annotations

import logging
import re
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from actwatch.config import AppConfig
from actwatch.delivery.mqtt import CameraName, MqttTarget
from actwatch.delivery.outbox import DeliveryWorker, Outbox, Target
from actwatch.delivery.payloads import event_payload
from actwatch.delivery.settings import OutboxSettings, WebhookTarget
from actwatch.delivery.webhook import WebhookDelivery
from actwatch.service.metrics import ServiceMetrics
from actwatch.service.store import EventRecord, EventStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TargetStatus:
    """One target as ``/readyz`` shows it: ``ok``, ``failing`` (with ``last_error``) and its backlog."""

    state: str
    last_error: str | None
    pending: int


def default_box_id() -> str:
    """The host name as a box id (used by webhooks when no ``mqtt.box_id`` is set)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:64] or "box"


class DeliveryService:
    """The outbox, the targets and their workers."""

    def __init__(
        self,
        store: EventStore,
        outbox_settings: OutboxSettings,
        targets: Sequence[Target],
        metrics: ServiceMetrics,
        *,
        box: str,
        webhook_filters: dict[str, WebhookTarget] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._outbox = Outbox(store, outbox_settings, clock=clock)
        self._metrics = metrics
        self._clock = clock
        self.box = box
        self._workers = [DeliveryWorker(self._outbox, target, metrics) for target in targets]
        self._filters = webhook_filters or {}
        metrics.outbox_bound.set(outbox_settings.max_pending)
        for target in targets:
            metrics.add_delivery_target(target.name)

    @classmethod
    def from_config(cls, config: AppConfig, store: EventStore, metrics: ServiceMetrics) -> DeliveryService:
        """The targets ``config.mqtt`` and ``config.webhooks`` name."""
        targets: list[Target] = []
        if config.mqtt is not None:
            cameras = [CameraName(c.id, c.name) for c in config.cameras]
            labels = [rule.label for rule in config.alerts.rules if rule.enabled]
            targets.append(MqttTarget(config.mqtt, store, cameras=lambda: cameras, labels=labels))
        filters: dict[str, WebhookTarget] = {}
        for hook in config.webhooks.targets:
            delivery = WebhookDelivery(hook)
            targets.append(delivery)
            filters[delivery.name] = hook
        box = config.mqtt.box_id if config.mqtt is not None else default_box_id()
        return cls(store, config.outbox, targets, metrics, box=box, webhook_filters=filters)

    @property
    def target_names(self) -> tuple[str, ...]:
        return tuple(w.target.name for w in self._workers)

    def targets_for(self, label: str, camera_id: str) -> list[str]:
        """The targets an event of ``label`` on ``camera_id`` goes to (webhooks may be per rule)."""
        names = []
        for name in self.target_names:
            hook = self._filters.get(name)
            if hook is None or hook.wants(label, camera_id):
                names.append(name)
        return names

    # ------------------------------------------------------------------------------- pipeline side
    def enqueue(self, conn: sa.Connection, record: EventRecord) -> None:
        """Queue ``record`` for its targets in the event's own transaction (the store's hook)."""
        event = record.event
        targets = self.targets_for(event.label, event.camera_id)
        if not targets:
            return
        payload = event_payload(
            event, box=self.box, stored_at=record.created_at, snapshot=record.snapshot_path is not None
        )
        for target, dropped in self._outbox.enqueue(conn, targets, event.id, payload).items():
            self._metrics.count_outbox_dropped(target, dropped)

    def notify(self) -> None:
        """Wake the workers: the transaction that enqueued has committed."""
        for worker in self._workers:
            worker.wake()

    # --------------------------------------------------------------------------------------- control
    def start(self) -> None:
        for worker in self._workers:
            worker.target.start()
            worker.start()
        log.info("delivery: %s", ", ".join(self.target_names) or "no targets")

    def stop(self) -> None:
        for worker in self._workers:
            worker.stop()
        for worker in self._workers:
            try:
                worker.target.stop()
            except Exception:
                log.exception("stopping %s failed", worker.target.name)

    def statuses(self) -> dict[str, TargetStatus]:
        """Each target's state: a refused MQTT connection (bad credentials) shows here as ``failing``."""
        out: dict[str, TargetStatus] = {}
        for worker in self._workers:
            status = worker.status()
            error = status.last_error
            connection_error = getattr(worker.target, "error", None)
            if connection_error:
                error = connection_error
            pending = self._outbox.backlog(worker.target.name).pending
            out[worker.target.name] = TargetStatus("failing" if error else "ok", error, pending)
        return out

    def refresh_metrics(self) -> None:
        """Backlog and oldest pending age per target, read from the outbox table (for ``/metrics``)."""
        now = self._clock()
        for name in self.target_names:
            backlog = self._outbox.backlog(name)
            age = 0.0 if backlog.oldest_created_at is None else now - backlog.oldest_created_at
            self._metrics.set_outbox(
                name, pending=backlog.pending, oldest_age_s=age, bound=self._outbox.settings.max_pending
            )
