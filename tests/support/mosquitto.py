"""A real Mosquitto broker on loopback for tests (Debian package ``mosquitto``), and an MQTT recorder.

:class:`MosquittoBroker` writes a config into a temporary folder (listener on 127.0.0.1 and a free
port, optional password file made with ``mosquitto_passwd``, persistence on so that a stopped and
restarted broker keeps persistent sessions and their queued QoS 1 messages, as a real one does), starts
``mosquitto`` and waits until the port accepts connections. :meth:`MosquittoBroker.stop` and
:meth:`MosquittoBroker.start` again restart it on the same port.

:class:`MqttRecorder` is a paho client that records every message of its subscriptions; tests wait
on what it has seen (:meth:`MqttRecorder.wait_for`), never on a fixed sleep.

Example:
    >>> with MosquittoBroker() as broker:  # doctest: +SKIP
    ...     with MqttRecorder(broker.port, ["actwatch/#"]) as rec:
    ...         ...
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.support.net import free_port

SETUP_HINT = "install the Debian packages 'mosquitto mosquitto-clients' by running scripts/setup.sh"


def _binary(name: str) -> str:
    found = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.path.exists(p)), None
    )
    if found is None:
        raise RuntimeError(f"{name} not found: {SETUP_HINT}")
    return found


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


class MosquittoBroker:
    """One Mosquitto on 127.0.0.1; ``users`` (name -> password) turns anonymous access off."""

    def __init__(self, users: dict[str, str] | None = None, port: int | None = None) -> None:
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix="actwatch-mosquitto-"))
        self.users = users
        self.process: subprocess.Popen[bytes] | None = None
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'false' if users else 'true'}",
            "persistence true",
            f"persistence_location {self.root}/",
            "autosave_interval 0",  # saved at shutdown (SIGTERM), which is what the restart tests need
            "max_queued_messages 100000",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # as root Mosquitto would switch to 'mosquitto', who cannot read our folder
        if users:
            passwd = self.root / "passwd"
            for index, (name, password) in enumerate(users.items()):
                flags = ["-c"] if index == 0 else []
                subprocess.run(
                    [_binary("mosquitto_passwd"), *flags, "-b", str(passwd), name, password],
                    check=True,
                    capture_output=True,
                    timeout=30,
                )
            lines.append(f"password_file {passwd}")
        self.config = self.root / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")
        self.log = self.root / "mosquitto.log"

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> MosquittoBroker:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen([_binary("mosquitto"), "-c", str(self.config)], stdout=log, stderr=log)
        deadline = time.monotonic() + timeout_s
        while not _accepts(self.port):
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout_s:.0f} s")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        """SIGTERM (Mosquitto saves its sessions) and wait until the port is closed."""
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(30)
        self.process = None

    def __enter__(self) -> MosquittoBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    user_properties: dict[str, str]


class MqttRecorder:
    """Subscribes to ``topics`` (QoS 1) and keeps every message; a persistent session when ``client_id``
    is given (``clean_start=False``), so messages published while it is away are queued by the broker."""

    def __init__(
        self,
        port: int,
        topics: Sequence[str],
        *,
        client_id: str | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.port = port
        self.topics = list(topics)
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id or "", protocol=paho.MQTTv5)
        self._persistent = client_id is not None
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.reconnect_delay_set(1, 2)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_a: self._subscribed.set()

    def _on_connect(self, client: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not reason.is_failure:
            client.subscribe([(t, 1) for t in self.topics])

    def _on_message(self, _c: paho.Client, _u: Any, message: paho.MQTTMessage) -> None:
        props = getattr(message.properties, "UserProperty", None) or []
        with self._lock:
            self.messages.append(Received(message.topic, bytes(message.payload), bool(message.retain), dict(props)))

    def start(self) -> MqttRecorder:
        properties = None
        if self._persistent:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = 3600
        self.client.connect_async(
            "127.0.0.1", self.port, keepalive=10, clean_start=not self._persistent, properties=properties
        )
        self.client.loop_start()
        if not self._subscribed.wait(30):
            raise AssertionError("the MQTT recorder could not subscribe within 30 s")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def on(self, topic: str) -> list[Received]:
        with self._lock:
            return [m for m in self.messages if paho.topic_matches_sub(topic, m.topic)]

    def wait_for(self, predicate: Callable[[MqttRecorder], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate(self):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
            time.sleep(0.05)

    def __enter__(self) -> MqttRecorder:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
