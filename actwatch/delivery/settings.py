"""Settings of delivery: the MQTT broker (``mqtt:``), webhook targets (``webhooks:``), the outbox bound.

Passwords and webhook secrets are :class:`~pydantic.SecretStr`: give them with ``${VAR}`` in the YAML or
``ACTWATCH_MQTT__PASSWORD_FILE`` (see :mod:`actwatch.config.secrets`); they are masked wherever shown.

Example:
    >>> m = MqttSettings(url="mqtt://broker.lan:1883", box_id="shop-1")
    >>> m.endpoint().host, m.endpoint().port, m.endpoint().tls, m.events_topic()
    ('broker.lan', 1883, False, 'actwatch/shop-1/events')
    >>> MqttBrokerSettings(url="mqtts://broker.lan").endpoint().port
    8883
    >>> WebhookTarget(name="phone", url="https://hooks.example/x", labels=["fall"]).wants("fighting")
    False
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, SecretStr, model_validator

from actwatch.settings import StrictModel

BOX_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
"""A box id is one MQTT topic level: no ``/``, ``+`` or ``#``."""
TARGET_NAME_PATTERN = r"^[a-z0-9_-]{1,64}$"
MQTT_SCHEMES = {"mqtt": (False, 1883), "mqtts": (True, 8883)}


@dataclass(frozen=True, slots=True)
class BrokerEndpoint:
    """Where the broker is: host, port and whether the connection uses TLS."""

    host: str
    port: int
    tls: bool


def _check_mqtt_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in MQTT_SCHEMES:
        raise ValueError(f"scheme must be mqtt:// or mqtts://, got '{parts.scheme or '(none)'}://'")
    if not parts.hostname:
        raise ValueError("the URL needs a host, e.g. mqtt://broker.lan:1883")
    if parts.username or parts.password:
        raise ValueError("put credentials in mqtt.username and mqtt.password (with ${VAR}), not in the URL")
    if parts.path not in ("", "/") or parts.query:
        raise ValueError("the URL is mqtt[s]://host[:port], without a path or query")
    _ = parts.port  # a bad port raises ValueError here
    return url.strip()


def _check_http_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("a webhook URL is http(s)://host[:port]/path")
    return url.strip()


MqttUrl = Annotated[str, Field(max_length=2048), AfterValidator(_check_mqtt_url)]
HttpUrl = Annotated[str, Field(max_length=2048), AfterValidator(_check_http_url)]


class MqttTlsSettings(StrictModel):
    """TLS to the broker (used with ``mqtts://``): a private CA and an optional client certificate."""

    ca_file: Path | None = Field(None, description="CA bundle that signed the broker's certificate (default: system).")
    cert_file: Path | None = Field(None, description="Client certificate (PEM), for brokers that ask for one.")
    key_file: Path | None = Field(None, description="Private key of cert_file (PEM).")
    insecure: bool = Field(False, description="Skip the broker's host name check (testing only).")


class MqttBrokerSettings(StrictModel):
    """A connection to an MQTT broker; the hub uses this, a box uses :class:`MqttSettings`."""

    url: MqttUrl = Field(description="mqtt://host:1883 or mqtts://host:8883 (TLS).")
    username: str | None = Field(None, max_length=256, description="Broker user name.")
    password: SecretStr | None = Field(None, description="Broker password: use ${VAR} or ACTWATCH_MQTT__PASSWORD_FILE.")
    tls: MqttTlsSettings = Field(default_factory=MqttTlsSettings, description="TLS options (mqtts://).")
    topic_prefix: str = Field(
        "actwatch", pattern=r"^[^#+]{1,128}$", description="First topic level(s): <prefix>/<box>/events."
    )
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keep-alive; a dead broker is noticed after 1.5x.")
    client_id: str | None = Field(None, max_length=128, description="MQTT client id (default: derived from the box).")

    def endpoint(self) -> BrokerEndpoint:
        parts = urlsplit(self.url)
        tls, default_port = MQTT_SCHEMES[parts.scheme]
        return BrokerEndpoint(parts.hostname or "", parts.port or default_port, tls)


class MqttSettings(MqttBrokerSettings):
    """``mqtt:``: where a box publishes its events, states, snapshots and availability."""

    box_id: str = Field(pattern=BOX_ID_PATTERN, description="This box's name in topics and in the hub's events.")
    discovery: bool = Field(
        True, description="Publish Home Assistant MQTT discovery (one binary sensor per camera x label)."
    )
    discovery_prefix: str = Field(
        "homeassistant", pattern=r"^[^#+]{1,128}$", description="Home Assistant's discovery prefix."
    )
    state_hold_s: float = Field(
        30.0, gt=0, le=86400, description="A camera x label state stays ON this long after its last event."
    )
    snapshot_max_side: int = Field(640, ge=64, le=4096, description="Longest side of the snapshot published (pixels).")
    publish_timeout_s: float = Field(10.0, gt=0, le=600, description="How long to wait for the broker's PUBACK.")

    def box_topic(self, *levels: str) -> str:
        return "/".join((self.topic_prefix, self.box_id, *levels))

    def events_topic(self) -> str:
        return self.box_topic("events")


class WebhookTarget(StrictModel):
    """One HTTP endpoint that receives events as JSON (``POST``), signed with HMAC-SHA256 if ``secret`` is set."""

    name: str = Field(pattern=TARGET_NAME_PATTERN, description="Name in metrics and logs (a slug).")
    url: HttpUrl = Field(description="http(s) URL the events are POSTed to.")
    secret: SecretStr | None = Field(
        None, description="HMAC-SHA256 key of the X-Actwatch-Signature header: use ${VAR}."
    )
    labels: list[str] | None = Field(
        None, description="Only events of these alert rules (labels); null: every event (a global target)."
    )
    cameras: list[str] | None = Field(None, description="Only events of these cameras; null: every camera.")
    timeout_s: float = Field(5.0, gt=0, le=120, description="Time allowed for one request.")

    def wants(self, label: str, camera_id: str | None = None) -> bool:
        """Whether an event of ``label`` (on ``camera_id``) goes to this target."""
        if self.labels is not None and label not in self.labels:
            return False
        return not (self.cameras is not None and camera_id is not None and camera_id not in self.cameras)


class WebhookSettings(StrictModel):
    """``webhooks:``: the HTTP targets; per-rule targets list the labels they want."""

    targets: list[WebhookTarget] = Field(default_factory=list, description="Webhook targets.")

    @model_validator(mode="after")
    def _unique(self) -> WebhookSettings:
        names = [t.name for t in self.targets]
        if len(set(names)) != len(names):
            raise ValueError("targets: duplicate webhook name")
        return self


class OutboxSettings(StrictModel):
    """``outbox:``: events waiting for a target, on disk beside the events."""

    max_pending: int = Field(
        100_000,
        ge=1,
        le=100_000_000,
        description="Most events waiting per target; past it the oldest are dropped (counted).",
    )
    retry_initial_s: float = Field(1.0, gt=0, le=3600, description="First wait after a failed delivery.")
    retry_max_s: float = Field(
        60.0, gt=0, le=86400, description="Longest wait between retries (doubling from retry_initial_s)."
    )
