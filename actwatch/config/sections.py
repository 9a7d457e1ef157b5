"""The sections of the service configuration that belong to the service itself.

Stage settings are the stages' own models and are composed by :class:`~actwatch.config.app.AppConfig`
as they are: ``capture:`` is :class:`~actwatch.capture.settings.CaptureSettings`, ``detector:`` is
:class:`~actwatch.tracker.detector.DetectorSettings`, ``tracker:`` is
:class:`~actwatch.tracker.bytetrack.TrackerSettings`. The sections here are the server, the cameras,
the exported model, the alert rules and the event storage (the compute loop's ``pipeline:`` is
:mod:`actwatch.config.pipeline`).

Camera zones are polygons in **pixels** of that camera's frames (the alert engine compares them with
detector boxes in pixels).

Example:
    >>> CameraConfig(id="lobby", url="rtsp://u:pw@10.0.0.7/live").public_dict()["url"]
    'rtsp://u:***@10.0.0.7/live'
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, SecretStr, field_validator, model_validator

from actwatch.capture.sources import SourceSpec, mask_credentials
from actwatch.errors import SourceError
from actwatch.onnx_choices import BatchPadding, Preprocess, check_requested
from actwatch.settings import StrictModel

CAMERA_ID_PATTERN = r"^[a-z0-9_-]{1,64}$"
MAX_ZONE_POINTS = 256


def mask_url(text: str) -> str:
    """``text`` with the credentials of any URL in it masked."""
    return mask_credentials(text)


def validate_source_url(url: str) -> str:
    """Check the form of ``url`` with ``SourceSpec.parse``; the ``ValueError`` message never shows credentials.

    Files are not looked up here: whether a source may be opened is the
    :class:`~actwatch.capture.source_policy.SourcePolicy`'s decision (``AppConfig.sources``), taken where a
    camera enters the service, so a missing file and a forbidden one get the same answer.
    """
    try:
        SourceSpec.parse(url, locate_files=False)
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
Zone = Annotated[
    list[Point],
    AfterValidator(_check_zone),
    # Checked by _check_zone (with its own messages); stated in the JSON schema too, for API clients.
    Field(json_schema_extra={"minItems": 3, "maxItems": MAX_ZONE_POINTS}),
]
"""A polygon of ``[x, y]`` points in frame pixels (>= 3 points, non-zero area)."""
CameraId = Annotated[str, Field(pattern=CAMERA_ID_PATTERN)]


def check_max_fps_source(url: str, max_fps: float | None) -> None:
    """``ValueError`` for a ``max_fps`` on a file or webcam: FFmpeg caps a network camera's rate, while files
    and webcams (OpenCV) are read at their own.

    Example:
        >>> check_max_fps_source("rtsp://10.0.0.5/live", 10.0)
        >>> check_max_fps_source("0", 10.0)
        Traceback (most recent call last):
        ...
        ValueError: max_fps applies to network cameras (rtsp://, http(s)://) only; remove it for this file or webcam
    """
    if max_fps is not None and SourceSpec.parse(url, locate_files=False).kind not in ("rtsp", "http"):
        raise ValueError(
            "max_fps applies to network cameras (rtsp://, http(s)://) only; remove it for this file or webcam"
        )


SourceUrl = Annotated[str, Field(max_length=2048), AfterValidator(validate_source_url)]


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
    # The WebSocket slow-client contract (README, "WebSocket"): see actwatch/service/server.py.
    ws_ping_interval_s: float = Field(
        20.0,
        gt=0,
        le=3600,
        description="Seconds between WebSocket keepalive pings. A late pong never closes a connection (a slow "
        "reader's pong waits behind the messages queued for it); the pings keep data flowing, so a vanished "
        "peer is found within dead_peer_timeout_s.",
    )
    dead_peer_timeout_s: float = Field(
        120.0,
        ge=1,
        le=3600,
        description="A connection whose peer acknowledges nothing (it vanished) or keeps its receive window shut "
        "(it reads nothing at all) for this many seconds is closed (TCP_USER_TIMEOUT).",
    )
    send_buffer_bytes: int = Field(
        262_144,
        ge=4096,
        le=64 << 20,
        description="Kernel send buffer of each connection (SO_SNDBUF). It bounds how much a slow WebSocket "
        "client has in flight before its own queue (ws_queue_size) drops the oldest messages.",
    )
    auth_failures_per_minute: int = Field(
        30,
        ge=1,
        le=100_000,
        description="Wrong or missing tokens accepted per client address per minute (HTTP and WebSocket); "
        "more get 429 with Retry-After (WebSocket: close code 1008) until the budget refills.",
    )
    max_pending_websockets: int = Field(
        64,
        ge=1,
        le=100_000,
        description="WebSocket connections allowed to wait for their first 'auth' message at once; more are "
        "closed with code 1013 (try again later).",
    )

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
    hwaccel: Literal["none", "cuda", "auto"] | None = Field(
        None, description="Hardware decoding of this network camera (see capture.hwaccel); unset: capture.hwaccel."
    )
    max_fps: float | None = Field(
        None,
        gt=0,
        le=240,
        description="Frames per second at most read from this network camera (see capture.max_fps); unset: "
        "capture.max_fps.",
    )
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

    @model_validator(mode="after")
    def _max_fps_of_network_cameras(self) -> CameraConfig:
        check_max_fps_source(self.url, self.max_fps)
        return self

    def public_dict(self) -> dict[str, Any]:
        """The camera as JSON-able data with credentials in the URL masked."""
        data = self.model_dump(mode="json")
        data["url"] = mask_url(self.url)
        return data


class ModelSection(StrictModel):
    """The exported action model."""

    dir: Path = Field(Path("models/actwatch"), description="Exported model folder (manifest.json + ONNX graphs).")
    providers: Annotated[list[str] | None, AfterValidator(check_requested)] = Field(
        None, description="ONNX Runtime providers in order; unset: TensorRT, CUDA, CPU among those available."
    )
    intra_op_threads: int | None = Field(None, ge=1, le=256, description="ONNX Runtime intra-op threads.")
    preprocess: Preprocess = Field(
        "auto",
        description="Where crops become the encoder's input (uint8 BGR -> normalised float RGB CHW). host: "
        "numpy on the CPU. graph: the first nodes of a derived copy of the encoder that takes uint8 crops "
        "(cached under the actwatch cache folder), on the model's device: on a GPU a crop crosses the bus "
        "once, as a quarter of the bytes. auto: graph when the model is to run on CUDA or TensorRT.",
    )
    max_batch: int | None = Field(
        None,
        ge=1,
        le=4096,
        description="Most crops (or windows) per ONNX Runtime call; a step with more is split into calls of "
        "this size. On a GPU the encoder's calls are padded to it (model.batch_padding) and the model is run "
        "at start at each size its calls can have, so it also bounds the model's GPU memory and TensorRT's "
        "batch profile. Unset: 8 per configured camera rounded up to a power of two, from 32 to 256.",
    )
    batch_padding: BatchPadding = Field(
        "auto",
        description="Zero rows added to each ONNX Runtime call's batch (their results dropped), since ONNX "
        "Runtime's CUDA convolutions build their cuDNN plans again whenever their input shape changes (324 ms "
        "for this encoder on an H200, against 1.5 ms a call). pow2: each call up to the next power of two, "
        "each size on its own session (one under TensorRT, whose engine serves every size). fixed: the "
        "encoder's (and a whole-clip model's) calls all at model.max_batch, one session (less GPU memory, "
        "more padding); the head's as pow2. off: none, one session. auto: pow2 on a GPU provider, off on "
        "the CPU (which prepares nothing per shape).",
    )


class AlertRuleConfig(StrictModel):
    """When a class becomes an alert. Classes without an enabled rule never alert.

    Example:
        >>> AlertRuleConfig(label="fighting", threshold=0.8, n=3, m=5).cooldown_s
        30.0
    """

    label: str = Field(
        min_length=1,
        max_length=128,
        description="Class name of the action model, or the label of a behaviour signal (signals: fallen, "
        "loitering, running).",
    )
    threshold: float = Field(
        0.5, gt=0, le=1, description="Probability (or signal score) a window (or step) needs to count as agreeing."
    )
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


DEFAULT_UPLOAD_EXTENSIONS = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg")


class PredictionsConfig(StrictModel):
    """Upload-a-video jobs (``POST /predictions``): limits, queue, retention and their share of compute.

    Example:
        >>> PredictionsConfig(max_upload_mb=50).max_upload_bytes
        52428800
    """

    enabled: bool = Field(True, description="Accept uploads (they need the compute pipeline: `actwatch serve`).")
    max_upload_mb: float = Field(
        200.0, gt=0, le=16384, description="Largest upload in MiB; larger ones are refused with 413."
    )
    max_duration_s: float = Field(
        600.0, gt=0, le=86400, description="Longest video in seconds; longer ones are refused with 422."
    )
    allowed_extensions: tuple[str, ...] = Field(
        DEFAULT_UPLOAD_EXTENSIONS,
        min_length=1,
        description="File name endings accepted (lower case, with the dot); others are refused with 415.",
    )
    max_jobs: int = Field(
        4, ge=1, le=1000, description="Most jobs queued or running at once; one more is refused with 429."
    )
    retention_s: float = Field(
        3600.0, gt=0, le=86400 * 30, description="Finished jobs (results, video) are deleted this long after."
    )
    compute_share: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Most share of wall time a job's compute thread works; it sleeps the rest, so live "
        "cameras keep the compute they need (1: no pause).",
    )

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @field_validator("allowed_extensions")
    @classmethod
    def _extensions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for ext in value:
            if not re.fullmatch(r"\.[a-z0-9]{1,10}", ext):
                raise ValueError(f"'{ext}' is not a file ending like '.mp4' (lower case, with the dot)")
        return value
