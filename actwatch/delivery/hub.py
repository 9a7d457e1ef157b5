"""``actwatch hub``: one event store, API, WebSocket feed and dashboard for a fleet of boxes.

Boxes publish to the broker (they dial out: boxes behind NAT work); the hub subscribes to
``<prefix>/+/events`` and ``<prefix>/+/+/+/snapshot`` and stores each event once, by id, in one
:class:`~actwatch.service.store.EventStore` (SQLite for a small fleet, PostgreSQL by URL for a large
one). It serves the box's own app (:func:`~actwatch.service.app.create_app`): the same events API with a
``box`` filter, the same WebSocket feed and dashboard.

Scaling: ``workers: N`` runs N MQTT clients on an MQTT 5 shared subscription
(``$share/<share_group>/...``), so the broker splits the feed between them; several hub processes with
the same ``share_group`` and one PostgreSQL database split it the same way. Each client keeps a
persistent session (``session_expiry_s``): while a hub is down the broker queues its QoS 1 events.
A message is acknowledged only once its event is stored, so a hub that dies mid-way gets it again;
storing is idempotent (:meth:`~actwatch.service.store.EventStore.add_if_new`).

Example:
    >>> cfg = HubConfig.model_validate({"mqtt": {"url": "mqtt://broker.lan"}, "workers": 2})
    >>> cfg.subscriptions()
    ['$share/actwatch-hub/actwatch/+/events', '$share/actwatch-hub/actwatch/+/+/+/snapshot']
    >>> cfg.app_config().database_url.endswith("data/hub/events.db")
    True
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from fastapi import FastAPI
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import Field

from actwatch.config import AppConfig, CameraConfig, ServerConfig, StorageConfig
from actwatch.config.secrets import redact, substitute_variables
from actwatch.delivery.mqtt import connection_problem, make_client
from actwatch.delivery.payloads import parse_event_payload
from actwatch.delivery.settings import MqttBrokerSettings
from actwatch.errors import ConfigError, StateError
from actwatch.service.store import EventRecord, EventStore
from actwatch.settings import StrictModel, read_yaml, validate_settings

log = logging.getLogger(__name__)


class HubConfig(StrictModel):
    """The hub's configuration file (``actwatch hub --config FILE``)."""

    mqtt: MqttBrokerSettings = Field(description="The broker the boxes publish to.")
    data_dir: Path = Field(Path("data/hub"), description="Folder of the events database (SQLite), snapshots, token.")
    storage: StorageConfig = Field(
        default_factory=StorageConfig,
        description="Event storage: database_url for PostgreSQL (postgresql+psycopg://...), retention.",
    )
    server: ServerConfig = Field(default_factory=ServerConfig, description="HTTP/WebSocket server of the hub.")
    workers: int = Field(1, ge=1, le=64, description="MQTT clients splitting the feed (shared subscription if > 1).")
    share_group: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="MQTT 5 shared-subscription group; set it to split the feed between hub processes "
        "(default: actwatch-hub when workers > 1, none otherwise).",
    )
    session_expiry_s: int = Field(
        86400, ge=0, le=2**32 - 1, description="How long the broker queues events for a hub that is down."
    )
    log_level: str = Field("INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$", description="Logging level.")

    def group(self) -> str | None:
        return self.share_group or ("actwatch-hub" if self.workers > 1 else None)

    def subscriptions(self) -> list[str]:
        prefix = self.mqtt.topic_prefix
        share = f"$share/{group}/" if (group := self.group()) else ""
        return [f"{share}{prefix}/+/events", f"{share}{prefix}/+/+/+/snapshot"]

    def app_config(self) -> AppConfig:
        """The app the hub serves: no cameras, this storage and server."""
        return AppConfig(data_dir=self.data_dir, server=self.server, storage=self.storage, log_level=self.log_level)


def load_hub_config(path: Path) -> tuple[HubConfig, frozenset[str]]:
    """The hub configuration from YAML (``${VAR}`` and ``VAR_FILE`` work as in the service's file), and the
    secret values that came in that way (masked in errors and logs)."""
    data = read_yaml(Path(path))
    substituted = substitute_variables(data, os.environ, str(path))
    try:
        return validate_settings(HubConfig, substituted.data, str(path)), substituted.secrets
    except ConfigError as exc:
        raise ConfigError(redact(str(exc), substituted.secrets)) from None


class HubIngest:
    """One MQTT client of the hub: stores each received event once, attaches snapshots, then acks."""

    def __init__(
        self,
        config: HubConfig,
        store: EventStore,
        on_new_event: Callable[[EventRecord], None],
        *,
        index: int = 0,
    ) -> None:
        self._config = config
        self._store = store
        self._on_new_event = on_new_event
        group = config.group() or "single"
        client_id = f"{config.mqtt.client_id or 'actwatch-hub'}-{group}-{index}"
        self._client = make_client(config.mqtt, client_id, manual_ack=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._client.on_connect_fail = self._on_connect_fail
        self._prefix = config.mqtt.topic_prefix + "/"
        endpoint = config.mqtt.endpoint()
        self._shown = f"{'mqtts' if endpoint.tls else 'mqtt'}://{endpoint.host}:{endpoint.port}"
        self.connected = threading.Event()
        self.error: str | None = "connecting to the MQTT broker"
        self.ingested = 0
        self.duplicates = 0
        self.rejected = 0

    def start(self) -> None:
        endpoint = self._config.mqtt.endpoint()
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self._config.session_expiry_s
        self._client.connect_async(
            endpoint.host,
            endpoint.port,
            keepalive=self._config.mqtt.keepalive_s,
            clean_start=False,  # the broker keeps our subscription and queues events while we are away
            properties=properties,
        )
        self._client.loop_start()

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if getattr(reason, "is_failure", False):
            self.error = connection_problem(reason, self._shown)
            log.error("hub: %s", self.error)
            return
        self.error = None
        client.subscribe([(topic, 1) for topic in self._config.subscriptions()])
        log.info("hub: connected to %s, subscribed to %s", self._shown, ", ".join(self._config.subscriptions()))

    def _on_subscribe(self, _c: paho.Client, _u: Any, _mid: int, reasons: Any, _p: Any) -> None:
        refused = [str(r) for r in reasons if getattr(r, "is_failure", False)]
        if refused:
            self.error = f"the MQTT broker {self._shown} refused the subscriptions: {', '.join(refused)}"
            log.error("hub: %s", self.error)
            return
        self.connected.set()  # ready only once the broker confirmed the subscriptions (SUBACK)

    def _on_disconnect(self, _c: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connected.clear()
        self.error = self.error or f"lost the connection to the MQTT broker {self._shown}: {reason}"

    def _on_connect_fail(self, _c: paho.Client, _u: Any) -> None:
        # paho retries by itself; the first failure of an outage is logged, /readyz shows it meanwhile
        unreachable = f"cannot reach the MQTT broker {self._shown} (retrying)"
        if self.error != unreachable:
            log.warning("hub: %s", unreachable)
        self.error = unreachable

    def _on_message(self, client: paho.Client, _u: Any, message: paho.MQTTMessage) -> None:
        try:
            self._ingest(message)
        except (ValueError, KeyError) as exc:  # not an event: acknowledged and counted, never retried
            self.rejected += 1
            log.warning("hub: ignoring a bad message on %s: %s", message.topic, exc)
        except Exception:  # the database failed: not acknowledged, the broker sends it again
            log.exception("hub: could not store the message on %s", message.topic)
            return
        client.ack(message.mid, message.qos)

    def _ingest(self, message: paho.MQTTMessage) -> None:
        if not message.topic.startswith(self._prefix):
            raise ValueError("outside the topic prefix")
        levels = message.topic[len(self._prefix) :].split("/")
        if len(levels) == 2 and levels[1] == "events":
            received = parse_event_payload(bytes(message.payload), box=levels[0])
            record = self._store.add_if_new(received.event, None)
            if record is None:
                self.duplicates += 1
                return
            self.ingested += 1
            self._on_new_event(record)
        elif len(levels) == 4 and levels[3] == "snapshot":
            properties = dict(getattr(message.properties, "UserProperty", None) or [])
            event_id = properties.get("event_id")
            if event_id and message.payload:
                self._store.attach_snapshot(event_id, bytes(message.payload))
        else:
            raise ValueError("not an events or snapshot topic")


class HubController:
    """The hub's part in :func:`~actwatch.service.app.create_app`: in place of the camera pipeline it runs
    the ingest workers (``start``/``stop``), has no cameras, and is ready once every worker is connected.

    :meth:`attach` gives it the app's store and the callback for each new event (broadcast, metrics).
    """

    def __init__(self, config: HubConfig) -> None:
        self._config = config
        self._workers: list[HubIngest] = []

    def attach(self, store: EventStore, on_new_event: Callable[[EventRecord], None]) -> None:
        self._workers = [HubIngest(self._config, store, on_new_event, index=i) for i in range(self._config.workers)]

    @property
    def workers(self) -> list[HubIngest]:
        return list(self._workers)

    def start(self) -> None:
        if not self._workers:
            raise StateError("HubController.attach was not called before start")
        for worker in self._workers:
            worker.start()

    def stop(self) -> None:
        for worker in self._workers:
            worker.stop()

    def add_camera(self, cfg: CameraConfig) -> None:
        raise StateError("a hub has no cameras: add cameras to the boxes")

    def update_camera(self, cfg: CameraConfig) -> None:
        raise StateError("a hub has no cameras: change cameras on the boxes")

    def remove_camera(self, camera_id: str) -> None:
        raise StateError("a hub has no cameras")

    def statuses(self) -> list[Any]:
        return []

    def ready(self) -> bool:
        return bool(self._workers) and all(w.connected.is_set() for w in self._workers)

    def not_ready_reasons(self) -> list[str]:
        return sorted({w.error for w in self._workers if w.error is not None and not w.connected.is_set()})


def create_hub_app(config: HubConfig, *, announce_token: Callable[[str], None] | None = None) -> FastAPI:
    """The hub's ASGI app: :func:`~actwatch.service.app.create_app` with a :class:`HubController`; each new
    event is counted and broadcast to the WebSocket feed as on a box."""
    from actwatch.service.app import create_app
    from actwatch.service.messages import EventMessage
    from actwatch.service.schemas import EventPublic

    controller = HubController(config)
    app_config = config.app_config()
    app = (
        create_app(app_config, controller, announce_token=announce_token)
        if announce_token
        else create_app(app_config, controller)
    )
    services = app.state.services

    def on_new_event(record: EventRecord) -> None:
        event = record.event
        services.metrics.count_event(event.camera_id, event.label)
        public = EventPublic.build(event, snapshot=record.snapshot_path is not None, crops=False)
        services.broadcaster.publish(EventMessage(public))

    controller.attach(services.store, on_new_event)
    return app
