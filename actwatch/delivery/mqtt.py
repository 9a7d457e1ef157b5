"""MQTT: a box's delivery target and the client set-up the fleet hub shares.

Topics (``<prefix>`` is ``mqtt.topic_prefix``, default ``actwatch``; ``<box>`` is ``mqtt.box_id``):

- ``<prefix>/<box>/events``: each event as JSON (:func:`~actwatch.delivery.payloads.event_payload`), QoS 1.
- ``<prefix>/<box>/<camera>/<label>``: retained ``{"state": "ON"|"OFF", "count": n, "event_id": ...}``;
  ON with each event, OFF ``mqtt.state_hold_s`` after the last one.
- ``<prefix>/<box>/<camera>/<label>/snapshot``: the event's JPEG (at most ``mqtt.snapshot_max_side``
  pixels), retained, QoS 1, with the MQTT 5 user property ``event_id``.
- ``<prefix>/<box>/available``: ``online``, and ``offline`` as the last will (and on a clean stop).
- ``<discovery_prefix>/binary_sensor/actwatch_<box>/<camera>_<label>/config``: Home Assistant discovery.

An outbox item is acknowledged once the broker sent PUBACK for its event, its snapshot and the state.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from actwatch.delivery.outbox import DeliveryError, OutboxItem
from actwatch.delivery.payloads import discovery_payload, discovery_topic, state_payload
from actwatch.delivery.settings import MqttBrokerSettings, MqttSettings
from actwatch.service.store import EventStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CameraName:
    """A camera as discovery names it."""

    id: str
    name: str


def connection_problem(reason: object, endpoint: str) -> str:
    """A clear sentence for a refused or failed connection (never holds the password).

    Example:
        >>> print(connection_problem("Bad user name or password", "mqtt://b:1883"))
        the MQTT broker mqtt://b:1883 refused the connection: Bad user name or password; check mqtt.username and \
mqtt.password
    """
    text = str(reason)
    hint = ""
    if any(word in text.lower() for word in ("password", "authori", "not authorized", "credentials")):
        hint = "; check mqtt.username and mqtt.password"
    return f"the MQTT broker {endpoint} refused the connection: {text}{hint}"


def make_client(settings: MqttBrokerSettings, client_id: str, *, manual_ack: bool = False) -> paho.Client:
    """A paho client (MQTT 5) with the settings' credentials and TLS; not connected yet. ``manual_ack``:
    received QoS 1 messages are acknowledged by the caller (the hub, once the event is stored)."""
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=paho.MQTTv5,
        reconnect_on_failure=True,
        manual_ack=manual_ack,
    )
    if settings.username is not None:
        password = settings.password.get_secret_value() if settings.password is not None else None
        client.username_pw_set(settings.username, password)
    if settings.endpoint().tls:
        tls = settings.tls
        client.tls_set(
            ca_certs=str(tls.ca_file) if tls.ca_file else None,
            certfile=str(tls.cert_file) if tls.cert_file else None,
            keyfile=str(tls.key_file) if tls.key_file else None,
            cert_reqs=ssl.CERT_REQUIRED,
        )
        client.tls_insecure_set(tls.insecure)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    return client


def shrink_jpeg(jpeg: bytes, max_side: int) -> bytes:
    """``jpeg`` re-encoded with its longest side at most ``max_side`` (unchanged when already small).

    Example:
        >>> ok, buf = cv2.imencode(".jpg", np.zeros((480, 960, 3), np.uint8))
        >>> small = shrink_jpeg(buf.tobytes(), 320)
        >>> cv2.imdecode(np.frombuffer(small, np.uint8), cv2.IMREAD_COLOR).shape
        (160, 320, 3)
    """
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if image is None or max(image.shape[:2]) <= max_side:
        return jpeg
    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return buf.tobytes() if ok else jpeg


class MqttTarget:
    """Publishes a box's events, states, snapshots, availability and discovery to the broker.

    ``cameras`` returns the cameras to announce to Home Assistant (called on each connection), ``labels``
    are the alerting classes. The connection (and its reconnection) runs on paho's own thread.
    """

    name = "mqtt"

    def __init__(
        self,
        settings: MqttSettings,
        store: EventStore,
        *,
        cameras: Callable[[], Sequence[CameraName]],
        labels: Sequence[str],
    ) -> None:
        self.settings = settings
        self._store = store
        self._cameras = cameras
        self._labels = tuple(labels)
        endpoint = settings.endpoint()
        self._shown = f"{'mqtts' if endpoint.tls else 'mqtt'}://{endpoint.host}:{endpoint.port}"
        self._client = make_client(settings, settings.client_id or f"actwatch-box-{settings.box_id}")
        self._client.will_set(settings.box_topic("available"), "offline", qos=1, retain=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_connect_fail = self._on_connect_fail
        self._connected = threading.Event()
        self._stopping = False
        self._error: str | None = "connecting to the MQTT broker"
        self._lock = threading.Lock()
        self._announced: set[tuple[str, str]] = set()
        self._states: dict[tuple[str, str], tuple[int, threading.Timer]] = {}

    # ------------------------------------------------------------------------------------- connection
    def start(self) -> None:
        endpoint = self.settings.endpoint()
        self._client.connect_async(endpoint.host, endpoint.port, keepalive=self.settings.keepalive_s)
        self._client.loop_start()

    def stop(self) -> None:
        self._stopping = True
        with self._lock:
            on = list(self._states)
            timers = [timer for _, timer in self._states.values()]
            self._states.clear()
        for timer in timers:
            timer.cancel()
        if self._connected.is_set():
            # A retained ON would outlive the box: whoever reads the topic later would see an alert on
            for key in on:
                self._publish_off(key)
            info = self._client.publish(self.settings.box_topic("available"), "offline", qos=1, retain=True)
            self._wait(info, 2.0)
        self._client.disconnect()
        self._client.loop_stop()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def error(self) -> str | None:
        """Why the target is not connected (``None`` while connected)."""
        return None if self._connected.is_set() else self._error

    def _on_connect(self, client: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if getattr(reason, "is_failure", False):
            self._error = connection_problem(reason, self._shown)
            log.error("%s", self._error)
            return
        self._error = None
        # Each state not on now is said off, before any event can turn one on (deliver waits for
        # _connected): a box that crashed, or stopped while the broker was away, left its last ON retained.
        keys = [(camera.id, label) for camera in self._cameras() for label in self._labels]
        with self._lock:
            off = [key for key in keys if key not in self._states]
        for key in off:
            self._publish_off(key)
        self._connected.set()
        log.info("MQTT: connected to %s as box %s", self._shown, self.settings.box_id)
        client.publish(self.settings.box_topic("available"), "online", qos=1, retain=True)
        with self._lock:
            self._announced.clear()
        if self.settings.discovery:
            for camera in self._cameras():
                for label in self._labels:
                    self._announce(camera.id, camera.name, label)

    def _on_disconnect(self, _c: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        if self._error is None:
            self._error = f"lost the connection to the MQTT broker {self._shown}: {reason}"
        if was and not self._stopping:
            log.warning("%s (reconnecting)", self._error)

    def _on_connect_fail(self, _c: paho.Client, _u: Any) -> None:
        self._error = f"cannot reach the MQTT broker {self._shown} (retrying)"

    # ---------------------------------------------------------------------------------------- publish
    def _announce(self, camera_id: str, camera_name: str, label: str) -> None:
        with self._lock:
            if (camera_id, label) in self._announced:
                return
            self._announced.add((camera_id, label))
        s = self.settings
        payload = discovery_payload(
            prefix=s.topic_prefix, box=s.box_id, camera_id=camera_id, camera_name=camera_name, label=label
        )
        topic = discovery_topic(s.discovery_prefix, s.box_id, camera_id, label)
        self._client.publish(topic, json.dumps(payload), qos=1, retain=True)

    def _wait(self, info: paho.MQTTMessageInfo, timeout_s: float) -> bool:
        try:
            info.wait_for_publish(timeout_s)
        except (RuntimeError, ValueError):
            return False
        return info.is_published()

    def deliver(self, item: OutboxItem) -> None:
        if not self._connected.is_set():
            raise DeliveryError(self._error or f"not connected to the MQTT broker {self._shown}")
        s = self.settings
        event = item.payload
        camera_id, label = str(event["camera_id"]), str(event["label"])
        if s.discovery:
            self._announce(camera_id, camera_id, label)
        waits = [self._client.publish(s.events_topic(), json.dumps(event), qos=1)]
        snapshot = self._store.snapshot_path(item.event_id)
        if snapshot is not None:
            properties = Properties(PacketTypes.PUBLISH)
            properties.UserProperty = ("event_id", item.event_id)
            jpeg = shrink_jpeg(snapshot.read_bytes(), s.snapshot_max_side)
            topic = s.box_topic(camera_id, label, "snapshot")
            waits.append(self._client.publish(topic, jpeg, qos=1, retain=True, properties=properties))
        waits.append(self._state_on(camera_id, label, item.event_id))
        for info in waits:
            if not self._wait(info, s.publish_timeout_s):
                raise DeliveryError(f"no PUBACK from the MQTT broker {self._shown} within {s.publish_timeout_s:g} s")

    def _state_on(self, camera_id: str, label: str, event_id: str) -> paho.MQTTMessageInfo:
        key = (camera_id, label)
        timer = threading.Timer(self.settings.state_hold_s, self._state_off, args=(key,))
        timer.daemon = True
        with self._lock:
            count, old = self._states.get(key, (0, None))
            if old is not None:
                old.cancel()
            self._states[key] = (count + 1, timer)
            count += 1
        info = self._publish_state(key, state_payload(True, count, event_id))
        timer.start()
        return info

    def _state_off(self, key: tuple[str, str]) -> None:
        with self._lock:
            if self._states.pop(key, None) is None:
                return
        self._publish_off(key)

    def _publish_off(self, key: tuple[str, str]) -> None:
        self._publish_state(key, state_payload(False, 0, None))

    def _publish_state(self, key: tuple[str, str], payload: dict[str, Any]) -> paho.MQTTMessageInfo:
        return self._client.publish(self.settings.box_topic(*key), json.dumps(payload), qos=1, retain=True)
