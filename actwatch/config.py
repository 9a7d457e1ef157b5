"""The service's configuration: one strict pydantic model tree, from YAML plus ``ACTWATCH_…`` variables.

:func:`load_config` reads a YAML file (optional) and the environment; environment variables override
the file. Variables use the ``ACTWATCH_`` prefix and ``__`` between nested keys, e.g.
``ACTWATCH_SERVER__PORT=9000`` or ``ACTWATCH_DETECTOR__DEVICE=cuda:0``; list values are JSON
(``ACTWATCH_SERVER__CORS_ORIGINS='["http://localhost:3000"]'``). Every section forbids unknown keys, and
every error names the key that is wrong (``cameras.0.url: unsupported scheme 'ftp'``).

Relative paths are relative to the working directory of the process. Camera zones are polygons in
**pixels** of that camera's frames (the alert engine compares them with detector boxes in pixels).

Example:
    >>> cfg = AppConfig(cameras=[{"id": "door", "url": "rtsp://user:pw@10.0.0.5/stream"}])
    >>> cfg.server.port, cfg.cameras[0].name
    (8000, 'door')
    >>> "pw" in cfg.public_dict()["cameras"][0]["url"]
    False
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from actwatch.capture.sources import MASK, SourceSpec, mask_credentials
from actwatch.errors import ConfigError, SourceError
from actwatch.tracker.bytetrack import TrackerSettings

log = logging.getLogger(__name__)

ENV_PREFIX = "ACTWATCH_"
CAMERA_ID_PATTERN = r"^[a-z0-9_-]{1,64}$"
MAX_ZONE_POINTS = 256


# --------------------------------------------------------------------------------------------- helpers
def mask_url(text: str) -> str:
    """``text`` with the credentials of any URL in it masked."""
    return mask_credentials(text)


def validate_source_url(url: str) -> str:
    """Check ``url`` with ``SourceSpec.parse``; the ``ValueError`` message never shows credentials."""
    try:
        SourceSpec.parse(url)
    except SourceError as exc:
        raise ValueError(mask_credentials(str(exc))) from None
    return url.strip()


def _check_zone(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    if len(points) < 3:
        raise ValueError(f"a zone needs at least 3 points, got {len(points)}")
    if len(points) > MAX_ZONE_POINTS:
        raise ValueError(f"a zone has at most {MAX_ZONE_POINTS} points, got {len(points)}")
    # Shoelace area: a polygon whose points are all on one line contains nothing.
    area = 0.0
    for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1], strict=True):
        area += x1 * y2 - x2 * y1
    if abs(area) < 1e-9:
        raise ValueError("zone polygon has zero area (points are collinear or repeated)")
    return points


Coordinate = Annotated[float, Field(ge=0, le=100_000, allow_inf_nan=False)]
Point = tuple[Coordinate, Coordinate]
Zone = Annotated[list[Point], AfterValidator(_check_zone)]
"""A polygon of ``[x, y]`` points in frame pixels (>= 3 points, non-zero area)."""
CameraId = Annotated[str, Field(pattern=CAMERA_ID_PATTERN)]
SourceUrl = Annotated[str, Field(max_length=2048), AfterValidator(validate_source_url)]


class StrictModel(BaseModel):
    """Base of every section: unknown keys are errors, values are validated on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --------------------------------------------------------------------------------------------- sections
class ServerConfig(StrictModel):
    """HTTP/WebSocket server settings."""

    host: str = Field("127.0.0.1", description="Address to listen on; 0.0.0.0 exposes the service.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port of the HTTP and WebSocket API.")
    token: SecretStr | None = Field(
        None,
        description="Bearer token required by the API. If unset, one is generated at first start, stored in "
        "<data_dir>/token (mode 0600) and printed once.",
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed by CORS; empty (the default) disables CORS."
    )
    ws_queue_size: int = Field(
        256,
        ge=1,
        le=100_000,
        description="Messages buffered per WebSocket client before the oldest are dropped.",
    )
    max_request_body_bytes: int = Field(
        1_048_576, ge=1024, le=1 << 30, description="Requests with a larger body are refused with 413."
    )
    max_cameras: int = Field(64, ge=1, le=4096, description="Most cameras the service accepts.")
    max_page_size: int = Field(500, ge=1, le=10_000, description="Largest 'limit' accepted by GET /events.")

    @field_validator("token")
    @classmethod
    def _token_strength(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters (or leave it unset to generate one)")
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin != "*" and not re.match(r"^https?://[^/\s]+$", origin):
                raise ValueError(f"'{origin}' is not an origin like 'http://host:port' (no path)")
        return value


class CameraConfig(StrictModel):
    """One camera (or video file played as a camera).

    Example:
        >>> CameraConfig(id="lobby", url="rtsp://10.0.0.7/live", zone=[[0, 300], [640, 300], [640, 480]]).name
        'lobby'
    """

    id: CameraId = Field(description="Unique slug of the camera: lower-case letters, digits, '_' and '-'.")
    name: str = Field("", max_length=200, description="Display name; defaults to the id.")
    url: SourceUrl = Field(
        repr=False,  # may hold credentials; public_dict() shows it masked
        description="Source: rtsp://, rtsps://, http(s):// MJPEG, a video file path or a webcam index.",
    )
    enabled: bool = Field(True, description="Whether the camera is read; disabled cameras stay configured.")
    loop: bool = Field(False, description="Restart a video file when it ends (files only).")
    realtime: bool = Field(
        True, description="Play video files at their own frame rate (False: as fast as they decode)."
    )
    zone: Zone | None = Field(
        None,
        description="Optional alert zone: polygon of [x, y] points in frame pixels; a person alerts only "
        "when the bottom-centre of their box is inside.",
    )

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("name") and isinstance(data.get("id"), str):
            data = {**data, "name": data["id"]}
        return data

    def public_dict(self) -> dict[str, Any]:
        """The camera as JSON-able data with credentials in the URL masked."""
        data = self.model_dump(mode="json")
        data["url"] = mask_url(self.url)
        return data


class CaptureConfig(StrictModel):
    """Defaults of every camera reader (``actwatch.capture.reader.ReaderSettings``; same names except
    ``backoff_factor``, which is its ``backoff_multiplier``)."""

    stall_timeout_s: float = Field(
        10.0, gt=0, le=3600, description="Reconnect when a live stream delivers no frame for this long."
    )
    open_timeout_s: float = Field(10.0, gt=0, le=600, description="Seconds allowed to open a network source.")
    backoff_initial_s: float = Field(0.5, gt=0, le=600, description="First reconnect delay.")
    backoff_max_s: float = Field(30.0, gt=0, le=3600, description="Longest reconnect delay.")
    backoff_factor: float = Field(
        2.0,
        ge=1.0,
        le=10.0,
        description="Delay multiplier after each failure (ReaderSettings.backoff_multiplier).",
    )
    backoff_jitter: float = Field(
        0.2, ge=0.0, le=1.0, description="Random +/- fraction added to each delay so cameras do not sync up."
    )
    max_attempts: int | None = Field(
        None,
        ge=1,
        description="Failed connections in a row before a camera is 'failed'; unset: retry forever.",
    )
    rtsp_transport: Literal["tcp", "udp"] = Field(
        "tcp", description="RTSP transport: 'tcp' (survives lossy networks and NAT) or 'udp'."
    )
    ffmpeg_options: dict[str, str] = Field(
        default_factory=dict, description="Extra FFmpeg demuxer options for network sources."
    )

    @model_validator(mode="after")
    def _backoff_order(self) -> CaptureConfig:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s must be >= backoff_initial_s")
        return self


class DetectorConfig(StrictModel):
    """The YOLOv8 person detector."""

    weights: Path | None = Field(
        None, description="Detector weights (.pt/.onnx); unset: the cached default from `actwatch assets`."
    )
    person_class_ids: list[Annotated[int, Field(ge=0)]] = Field(
        default_factory=lambda: [0], min_length=1, description="Detector classes that are persons."
    )
    conf: float = Field(0.25, gt=0, lt=1, description="Minimum detection confidence.")
    iou: float = Field(0.7, gt=0, lt=1, description="IoU threshold of non-maximum suppression.")
    imgsz: int = Field(640, ge=32, le=4096, description="Inference size in pixels (multiple of 32).")
    device: str | None = Field(None, description="Torch device ('cpu', 'cuda:0'); unset: the best available.")
    half: bool = Field(False, description="FP16 inference (CUDA only).")

    @field_validator("imgsz")
    @classmethod
    def _multiple_of_32(cls, value: int) -> int:
        if value % 32:
            raise ValueError(f"must be a multiple of 32, got {value}")
        return value


class ModelSection(StrictModel):
    """The exported action model."""

    dir: Path = Field(Path("models/actwatch"), description="Exported model folder (manifest.json + ONNX graphs).")
    providers: list[str] | None = Field(
        None, description="ONNX Runtime providers in order; unset: TensorRT, CUDA, CPU among those available."
    )
    intra_op_threads: int | None = Field(None, ge=1, le=256, description="ONNX Runtime intra-op threads.")


class PipelineConfig(StrictModel):
    """The compute loop."""

    stride: int = Field(5, ge=1, le=1000, description="Classify a track every N new samples.")
    max_tracks_per_camera: int = Field(32, ge=1, le=1000, description="Tracks buffered per camera at most.")
    max_buffer_mb: float = Field(512, gt=0, le=65536, description="Memory cap of all track buffers (MiB).")
    tick_interval_s: float = Field(
        0.01, gt=0, le=1, description="Sleep of the compute loop when no camera has a new frame."
    )
    publish_tracks: bool = Field(
        True, description="Broadcast live track boxes to WebSocket clients that subscribed to tracks."
    )


class AlertRuleConfig(StrictModel):
    """When a class becomes an alert. Classes without an enabled rule never alert.

    Example:
        >>> AlertRuleConfig(label="fighting", threshold=0.8, n=3, m=5).cooldown_s
        30.0
    """

    label: str = Field(min_length=1, max_length=128, description="Class name of the action model.")
    threshold: float = Field(0.5, gt=0, le=1, description="Probability a window needs to count as agreeing.")
    n: int = Field(3, ge=1, le=1000, description="Agreeing windows needed among the last m windows.")
    m: int = Field(5, ge=1, le=1000, description="Windows considered (n <= m).")
    cooldown_s: float = Field(30.0, ge=0, le=86400, description="Quiet time per camera x track x class.")
    min_track_age_s: float = Field(1.0, ge=0, le=3600, description="Track age needed before it may alert.")
    enabled: bool = Field(True, description="Disabled rules never alert.")

    @model_validator(mode="after")
    def _n_le_m(self) -> AlertRuleConfig:
        if self.n > self.m:
            raise ValueError(f"n ({self.n}) must be <= m ({self.m})")
        return self


class AlertsConfig(StrictModel):
    """Alert rules, one per class at most."""

    rules: list[AlertRuleConfig] = Field(
        default_factory=list, description="Alert rules; classes not listed never alert."
    )

    @field_validator("rules")
    @classmethod
    def _unique_labels(cls, rules: list[AlertRuleConfig]) -> list[AlertRuleConfig]:
        seen: set[str] = set()
        for rule in rules:
            if rule.label in seen:
                raise ValueError(f"two rules for label '{rule.label}'")
            seen.add(rule.label)
        return rules


class StorageConfig(StrictModel):
    """Where events go."""

    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL (sqlite:///path or postgresql+psycopg://…); unset: <data_dir>/events.db.",
    )
    retention_days: float = Field(30.0, gt=0, le=36500, description="Events older than this are deleted.")
    purge_interval_s: float = Field(3600.0, gt=0, le=86400 * 7, description="How often old events are purged.")
    keep_crops: bool = Field(True, description="Store each event's crops (PNG strip) next to its snapshot.")

    @field_validator("database_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^(sqlite|postgresql)(\+\w+)?://", value):
            raise ValueError("must be a sqlite:/// or postgresql:// SQLAlchemy URL")
        return value


LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class AppConfig(BaseSettings):
    """The whole service configuration. See the module docstring for YAML and environment rules.

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
    )

    server: ServerConfig = Field(default_factory=ServerConfig, description="HTTP/WebSocket server.")
    data_dir: Path = Field(
        Path("data/service"), description="Folder of the events database, snapshots and the API token."
    )
    cameras: list[CameraConfig] = Field(default_factory=list, description="Cameras read at start-up.")
    capture: CaptureConfig = Field(default_factory=CaptureConfig, description="Camera reader defaults.")
    detector: DetectorConfig = Field(default_factory=DetectorConfig, description="Person detector.")
    tracker: TrackerSettings = Field(
        default_factory=TrackerSettings, description="ByteTrack settings (actwatch.tracker.bytetrack)."
    )
    model: ModelSection = Field(default_factory=ModelSection, description="Exported action model.")
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig, description="Compute loop.")
    alerts: AlertsConfig = Field(default_factory=AlertsConfig, description="Alert rules.")
    storage: StorageConfig = Field(default_factory=StorageConfig, description="Event storage.")
    log_level: LogLevel = Field("INFO", description="Logging level: DEBUG, INFO, WARNING, ERROR or CRITICAL.")

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
        # No .env file and no secrets dir: one file (the YAML) plus the environment, nothing implicit.
        return env_settings, init_settings

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
        """The configuration for display: token hidden, credentials in camera and database URLs masked."""
        data = self.model_dump(mode="json")
        data["server"]["token"] = MASK if self.server.token is not None else None
        data["cameras"] = [camera.public_dict() for camera in self.cameras]
        if self.storage.database_url:
            data["storage"]["database_url"] = mask_url(self.storage.database_url)
        return data


# --------------------------------------------------------------------------------------------- loading
class _StrictLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses duplicate keys (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, typing.Hashable) and key in keys:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key '{key}'",
                    key_node.start_mark,
                )
            keys.add(key)
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, not {type(data).__name__}")
    return data


def _field_annotation(model: Any, loc: tuple[Any, ...]) -> Any:
    """The type at ``loc`` inside ``model`` (a pydantic class), or None when it cannot be followed."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(part, int):
            args = typing.get_args(current)
            if typing.get_origin(current) is not list or not args:
                return None
            current = args[0]
        elif isinstance(current, type) and issubclass(current, BaseModel) and part in current.model_fields:
            current = current.model_fields[part].annotation
        else:
            return None
    return _unwrap(current)


def _unwrap(tp: Any) -> Any:
    """``X`` from ``X | None`` and ``Annotated[X, ...]``."""
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _describe(error: Any) -> str:
    loc = tuple(error.get("loc", ()))
    key = ".".join(str(part) for part in loc) or "(top level)"
    message = str(error.get("msg", "invalid value"))
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if error.get("type") == "extra_forbidden" and loc:
        parent = _field_annotation(AppConfig, loc[:-1])
        if isinstance(parent, type) and issubclass(parent, BaseModel):
            allowed = sorted(parent.model_fields)
            close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            message = f"unknown key{hint} (allowed: {', '.join(allowed)})"
        else:
            message = "unknown key"
    # Model-level validators prefix their own key ("cameras: duplicate ..."); keep it as the key.
    if not loc and ": " in message:
        key, message = message.split(": ", 1)
    return f"{key}: {mask_url(message)}"


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem, each starting with the dotted key (``cameras.0.url: ...``)."""
    return "\n".join(f"  {_describe(err)}" for err in exc.errors())


def _unknown_env_sections() -> list[str]:
    names = set(AppConfig.model_fields)
    unknown = []
    for var in os.environ:
        if var.upper().startswith(ENV_PREFIX):
            head = var[len(ENV_PREFIX) :].lower().split("__", 1)[0]
            if head not in names and head:
                unknown.append(var)
    return sorted(unknown)


def load_config(path: Path | None = None) -> AppConfig:
    """The configuration from the YAML file ``path`` (optional) with ``ACTWATCH_…`` variables on top.

    Raises:
        ConfigError: the file is missing or not valid YAML (the message has the line), or a value is
            invalid (one line per problem, each naming the dotted key, e.g. ``server.port``).

    Example:
        >>> load_config(None).server.host
        '127.0.0.1'
    """
    data = _read_yaml(Path(path)) if path is not None else {}
    source = f"{path} + environment" if path is not None else "environment"
    for key in data:
        # BaseSettings treats '_env_file' & co. as loader options: never let the file reach those.
        if not isinstance(key, str) or key.startswith("_"):
            raise ConfigError(f"invalid configuration ({source}):\n  {key}: unknown key")
    try:
        config = AppConfig(**data)
    except ValidationError as exc:
        raise ConfigError(f"invalid configuration ({source}):\n{format_validation_error(exc)}") from None
    except SettingsError as exc:  # an ACTWATCH_ variable holding a list/dict that is not JSON
        field = re.search(r'field "(\w+)"', str(exc))
        key = field.group(1) if field else "?"
        raise ConfigError(
            f"invalid configuration (environment):\n  {key}: {ENV_PREFIX}{key.upper()} is not valid JSON"
        ) from None
    unknown = _unknown_env_sections()
    if unknown:
        # Other tools may use the ACTWATCH_ prefix too, so an unknown one is reported, not fatal.
        log.warning("ignoring unknown configuration variables: %s", ", ".join(unknown))
    return config
