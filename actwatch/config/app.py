"""The application model: every section of the service configuration composed into one settings tree.

Example:
    >>> cfg = AppConfig(cameras=[{"id": "door", "url": "rtsp://user:pw@10.0.0.5/stream"}])
    >>> cfg.server.port, cfg.cameras[0].name, cfg.capture.rtsp_transport, cfg.detector.device
    (8000, 'door', 'tcp', None)
    >>> "pw" in cfg.public_dict()["cameras"][0]["url"]
    False
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from actwatch.capture.settings import CaptureSettings
from actwatch.capture.source_policy import SourcePolicy
from actwatch.capture.sources import MASK, mask_credentials
from actwatch.config.pipeline import PipelineConfig
from actwatch.config.secrets import FileAwareEnvSource, redact_tree
from actwatch.config.sections import (
    AlertsConfig,
    CameraConfig,
    ModelSection,
    PredictionsConfig,
    ServerConfig,
    StorageConfig,
    mask_url,
)
from actwatch.delivery.settings import MqttSettings, OutboxSettings, WebhookSettings
from actwatch.errors import SourceError
from actwatch.service.media_settings import MediaSettings
from actwatch.signals.settings import SignalsSettings
from actwatch.tracker.bytetrack import TrackerSettings
from actwatch.tracker.detector import DetectorSettings

ENV_PREFIX = "ACTWATCH_"

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class AppConfig(BaseSettings):
    """The whole service configuration. See :mod:`actwatch.config` for YAML and environment rules.

    Example:
        >>> AppConfig(data_dir="/tmp/aw").database_url
        'sqlite:////tmp/aw/events.db'
    """

    model_config = SettingsConfigDict(
        extra="forbid",
        validate_assignment=True,
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        case_sensitive=False,
        hide_input_in_errors=True,  # a ValidationError's text must not repeat camera URLs or the token
    )

    server: ServerConfig = Field(default_factory=ServerConfig, description="HTTP/WebSocket server.")
    data_dir: Path = Field(
        Path("data/service"), description="Folder of the events database, snapshots and the API token."
    )
    cameras: list[CameraConfig] = Field(default_factory=list, description="Cameras read at start-up.")
    sources: SourcePolicy = Field(
        default_factory=SourcePolicy,
        description="Camera URL policy: the folders of video files, and the hosts and webcams cameras may use "
        "(actwatch.capture.source_policy).",
    )
    capture: CaptureSettings = Field(
        default_factory=CaptureSettings, description="Camera reader settings (actwatch.capture.settings)."
    )
    detector: DetectorSettings = Field(
        default_factory=DetectorSettings, description="Person detector (actwatch.tracker.detector)."
    )
    tracker: TrackerSettings = Field(
        default_factory=TrackerSettings, description="ByteTrack settings (actwatch.tracker.bytetrack)."
    )
    model: ModelSection = Field(default_factory=ModelSection, description="Exported action model.")
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig, description="Compute loop.")
    alerts: AlertsConfig = Field(
        default_factory=AlertsConfig, description="Alert rules, for the model's classes and the behaviour signals."
    )
    signals: SignalsSettings = Field(
        default_factory=SignalsSettings,
        description="Behaviour signals that need no training: fallen, loitering, running (actwatch.signals).",
    )
    storage: StorageConfig = Field(default_factory=StorageConfig, description="Event storage.")
    mqtt: MqttSettings | None = Field(
        None, description="MQTT broker the events go to (actwatch.delivery.settings); null: no MQTT."
    )
    webhooks: WebhookSettings = Field(
        default_factory=WebhookSettings, description="HTTP targets the events are POSTed to (signed)."
    )
    outbox: OutboxSettings = Field(
        default_factory=OutboxSettings, description="Durable queue of events waiting for MQTT and webhooks."
    )
    predictions: PredictionsConfig = Field(
        default_factory=PredictionsConfig, description="Upload-a-video jobs (POST /predictions)."
    )
    media: MediaSettings = Field(
        default_factory=MediaSettings,
        description="Live frames, MJPEG, signed media URLs and event clips (actwatch.service.media_settings).",
    )
    log_level: LogLevel = Field("INFO", description="Logging level: DEBUG, INFO, WARNING, ERROR or CRITICAL.")
    # Values that came from ${VAR} or *_FILE (actwatch.config.secrets): masked wherever shown.
    _secrets: frozenset[str] = PrivateAttr(default_factory=frozenset)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _cross_checks(self) -> AppConfig:
        seen: set[str] = set()
        for camera in self.cameras:
            if camera.id in seen:
                raise ValueError(f"cameras: duplicate camera id '{camera.id}'")
            seen.add(camera.id)
        for index, camera in enumerate(self.cameras):
            try:
                self.sources.admit(camera.url)
            except SourceError as exc:
                raise ValueError(f"cameras.{index}.url: {mask_credentials(str(exc))}") from None
        if len(self.cameras) > self.server.max_cameras:
            raise ValueError(f"cameras: {len(self.cameras)} cameras exceed server.max_cameras")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The YAML file arrives as init kwargs; the environment must win over it, so it comes first.
        # No .env file and no secrets dir: one file (the YAML) plus the environment, nothing implicit;
        # ACTWATCH_…_FILE variables are read from their files (Docker secrets).
        return FileAwareEnvSource(settings_cls), init_settings

    @property
    def database_url(self) -> str:
        """The storage URL, defaulting to a SQLite file in ``data_dir``."""
        if self.storage.database_url:
            return self.storage.database_url
        return f"sqlite:///{(self.data_dir / 'events.db').as_posix()}"

    @property
    def media_dir(self) -> Path:
        """Folder of event snapshots and crops."""
        return self.data_dir / "media"

    @property
    def token_path(self) -> Path:
        """Where a generated API token is kept."""
        return self.data_dir / "token"

    def public_dict(self) -> dict[str, Any]:
        """The configuration for display: token hidden, credentials in camera and database URLs masked,
        and every value that came from ``${VAR}`` or a ``*_FILE`` secret masked wherever it appears."""
        data = self.model_dump(mode="json")
        data["server"]["token"] = MASK if self.server.token is not None else None
        data["cameras"] = [camera.public_dict() for camera in self.cameras]
        if self.storage.database_url:
            data["storage"]["database_url"] = mask_url(self.storage.database_url)
        for hook in data["webhooks"]["targets"]:
            hook["url"] = mask_url(hook["url"])
        return redact_tree(data, self._secrets)

    @property
    def secret_values(self) -> frozenset[str]:
        """Values that came from ``${VAR}`` or ``*_FILE`` (see :mod:`actwatch.config.secrets`)."""
        return self._secrets

    def remember_secrets(self, secrets: frozenset[str]) -> None:
        """Record values that came from ``${VAR}`` or ``*_FILE`` so that :meth:`public_dict` masks them."""
        self._secrets = self._secrets | secrets
