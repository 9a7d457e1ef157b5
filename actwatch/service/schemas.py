"""Request and response bodies of the API: separate Create / Update / Public schemas per resource.

Inputs are strict (unknown fields are 422) and reuse the configuration's validated types, so a camera
accepted by ``POST /cameras`` is exactly one that would be accepted in the YAML file. Public schemas
never carry credentials: camera URLs are masked.

Example:
    >>> body = CameraCreate(id="door", url="rtsp://u:secret@10.0.0.5/s")
    >>> body.to_config().name, "secret" in CameraPublic.build(body.to_config(), None).url
    ('door', False)
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from actwatch.config import CameraConfig, CameraId, SourceUrl, Zone, mask_url
from actwatch.config.sections import check_max_fps_source
from actwatch.service.controller import CameraStatusLike
from actwatch.service.events import Event
from actwatch.service.signed_urls import SIGNABLE_PATTERN
from actwatch.service.store import ReviewState


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CameraCreate(_Input):
    """Body of ``POST /cameras``."""

    id: CameraId = Field(description="Unique slug: lower-case letters, digits, '_' and '-' (1-64).")
    name: str = Field("", max_length=200, description="Display name; defaults to the id.")
    url: SourceUrl = Field(description="rtsp://, rtsps://, http(s):// MJPEG, a video file path or a webcam index.")
    enabled: bool = Field(True, description="Start reading it now.")
    loop: bool = Field(False, description="Restart a video file when it ends.")
    realtime: bool = Field(True, description="Play video files at their own frame rate.")
    zone: Zone | None = Field(None, description="Alert zone: polygon of [x, y] points in frame pixels.")
    max_fps: float | None = Field(
        None,
        gt=0,
        le=240,
        description="Frames per second at most read from this network camera (rtsp://, http(s)://); unset: the "
        "service's capture.max_fps.",
    )

    @model_validator(mode="after")
    def _max_fps_of_network_cameras(self) -> CameraCreate:
        check_max_fps_source(self.url, self.max_fps)
        return self

    def to_config(self) -> CameraConfig:
        return CameraConfig(**self.model_dump())


class CameraUpdate(_Input):
    """Body of ``PATCH /cameras/{id}``: only the fields given change; ``"zone": null`` removes the zone,
    ``"max_fps": null`` the camera's own cap.

    ``name`` and ``enabled`` may be left out but not null (the schema says so: ``None`` is only the
    "not given" default, hidden from it).

    Example:
        >>> CameraUpdate.model_validate({"enabled": False}).model_dump(exclude_unset=True)
        {'enabled': False}
    """

    name: str | SkipJsonSchema[None] = Field(None, min_length=1, max_length=200, description="New display name.")
    zone: Zone | None = Field(None, description="New alert zone (pixels), or null to alert anywhere.")
    enabled: bool | SkipJsonSchema[None] = Field(None, description="Start (true) or stop (false) reading the camera.")
    max_fps: float | None = Field(
        None,
        gt=0,
        le=240,
        description="New frames-per-second cap of this network camera, or null for the service's capture.max_fps; "
        "the camera reconnects (its tracks start afresh).",
    )

    @field_validator("name", "enabled", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may be left out, but not null")
        return value


ZonePoint = Annotated[list[float], Field(min_length=2, max_length=2)]
"""``[x, y]`` in pixels (a list, not a tuple: a tuple's ``prefixItems`` schema trips OpenAPI tools)."""


class CameraPublic(BaseModel):
    """A camera as the API shows it: configuration plus live status, URL masked."""

    id: str = Field(description="Camera id.")
    name: str = Field(description="Display name.")
    url: str = Field(description="Source URL with credentials masked.")
    enabled: bool = Field(description="Whether the camera is being read.")
    loop: bool = Field(description="Video files restart when they end.")
    realtime: bool = Field(description="Video files play at their own frame rate.")
    zone: list[ZonePoint] | None = Field(description="Alert zone in pixels, if any.")
    max_fps: float | None = Field(None, description="Frames per second at most read from it; null: capture.max_fps.")
    state: str = Field(
        description="Reader state (connecting, streaming, reconnecting, failed, ended, stopped), 'disabled', "
        "'pending' when the pipeline has not reported it yet, or 'failed' when it could not be started."
    )
    last_error: str | None = Field(None, description="Last reader error, credentials masked.")
    frames_read: int = Field(0, description="Frames decoded since the reader started.")
    frames_dropped: int = Field(0, description="Frames skipped because a newer one arrived first.")
    fps: float = Field(0.0, description="Frames read per second, recently.")
    reconnects: int = Field(0, description="Reconnections since the reader started.")
    last_frame_wall_time: float | None = Field(None, description="Unix time of the newest frame.")

    @classmethod
    def build(
        cls, camera: CameraConfig, status: CameraStatusLike | None, start_error: str | None = None
    ) -> CameraPublic:
        data: dict[str, Any] = {
            "id": camera.id,
            "name": camera.name,
            "url": mask_url(camera.url),
            "enabled": camera.enabled,
            "loop": camera.loop,
            "realtime": camera.realtime,
            "zone": camera.zone,
            "max_fps": camera.max_fps,
        }
        if not camera.enabled:
            return cls(**data, state="disabled")
        if status is None:
            if start_error:  # the controller refused it at start-up
                return cls(**data, state="failed", last_error=mask_url(start_error))
            return cls(**data, state="pending")
        state = getattr(status.state, "value", status.state)
        error = status.last_error
        return cls(
            **data,
            state=str(state),
            last_error=mask_url(str(error)) if error else None,
            frames_read=int(status.frames_read),
            frames_dropped=int(status.frames_dropped),
            fps=float(status.fps),
            reconnects=int(status.reconnects),
            last_frame_wall_time=status.last_frame_wall_time,
        )


def snapshot_url(event_id: str) -> str:
    """Route of an event's snapshot JPEG (``GET /events/{id}/snapshot``)."""
    return f"/events/{event_id}/snapshot"


def crops_url(event_id: str) -> str:
    """Route of an event's crops PNG (``GET /events/{id}/crops``)."""
    return f"/events/{event_id}/crops"


def clip_url(event_id: str) -> str:
    """Route of an event's clip MP4 (``GET /events/{id}/clip``)."""
    return f"/events/{event_id}/clip"


class EventPublic(BaseModel):
    """An alert as the API and the WebSocket show it."""

    id: str = Field(description="Event id.")
    camera_id: str = Field(description="Camera that saw it.")
    track_id: int = Field(description="Track (person) id within that camera.")
    label: str = Field(description="Action class.")
    score: float = Field(description="Mean probability of the agreeing windows.")
    start_time: float = Field(description="Unix time of the first agreeing window.")
    frame_time: float = Field(description="Unix time of the frame that confirmed the alert.")
    bbox: list[float] = Field(description="Person box x1, y1, x2, y2 in frame pixels.")
    snapshot_url: str | None = Field(description="JPEG of the frame with the box drawn, if stored.")
    crops_url: str | None = Field(description="PNG strip of the crops the model saw, if stored.")
    box: str | None = Field(None, description="The box (MQTT box_id) that saw it, in a fleet hub; null on a box.")
    clip_url: str | None = Field(
        None, description="MP4 clip around the event, once written (a few seconds after the event)."
    )
    review_state: ReviewState = Field(
        "new", description="Review: new, acknowledged, or false_positive (kept for retraining)."
    )

    @classmethod
    def build(
        cls, event: Event, *, snapshot: bool, crops: bool, clip: bool = False, review_state: ReviewState = "new"
    ) -> EventPublic:
        return cls(
            id=event.id,
            camera_id=event.camera_id,
            track_id=event.track_id,
            label=event.label,
            score=event.score,
            start_time=event.start_time,
            frame_time=event.frame_time,
            bbox=list(event.bbox),
            snapshot_url=snapshot_url(event.id) if snapshot else None,
            crops_url=crops_url(event.id) if crops else None,
            box=event.box,
            clip_url=clip_url(event.id) if clip else None,
            review_state=review_state,
        )


class EventReview(_Input):
    """Body of ``PATCH /events/{id}``."""

    review_state: ReviewState = Field(
        description="new, acknowledged, or false_positive (its crops can be exported for retraining)."
    )


class MediaSignRequest(_Input):
    """Body of ``POST /media/sign``."""

    path: str = Field(
        max_length=200,
        pattern=SIGNABLE_PATTERN,
        description="A media path: /cameras/{id}/latest.jpg, /cameras/{id}/stream.mjpeg or "
        "/events/{id}/snapshot|crops|clip.",
    )


class SignedMedia(BaseModel):
    """A signed media URL for an <img> or <video> tag."""

    url: str = Field(description="The path with expires and signature; other query parameters may be added.")
    expires: int = Field(description="Unix time after which the URL is refused.")


class EventPage(BaseModel):
    """One page of ``GET /events``."""

    items: list[EventPublic] = Field(description="Events, newest first.")
    total: int = Field(description="Events matching the filters in all.")
    limit: int = Field(description="Page size asked for.")
    offset: int = Field(description="Events skipped before this page.")


class ErrorBody(BaseModel):
    """Every error answer except 422 (whose ``detail`` is a list of problems)."""

    detail: str = Field(description="What went wrong.")


_ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "The body could not be read as JSON text (e.g. it is not UTF-8).",
    401: "Missing or invalid bearer token.",
    404: "No such resource.",
    409: "Conflict with the current state (duplicate id, camera limit reached).",
    413: "Request body larger than server.max_request_body_bytes.",
    415: "Unsupported media type.",
    429: "Too many failed authentication attempts from this address; see Retry-After.",
    503: "Busy: try again later.",
}


def error_responses(*codes: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for error ``codes`` (``descriptions``: ``_404="..."`` overrides a text).

    Example:
        >>> sorted(error_responses(401, 404, _404="No such event."))
        [401, 404]
    """
    return {
        code: {"model": ErrorBody, "description": descriptions.get(f"_{code}", _ERROR_DESCRIPTIONS[code])}
        for code in codes
    }


PROTECTED = (401, 429)
"""What every route behind the token may answer."""


class Health(BaseModel):
    status: Literal["ok", "ready", "starting"] = Field(description="Liveness or readiness.")


class DeliveryState(BaseModel):
    """One delivery target (``mqtt``, ``webhook:<name>``) in ``/readyz``."""

    state: Literal["ok", "failing"] = Field(description="failing: the last attempt or the connection failed.")
    last_error: str | None = Field(None, description="Why (a refused MQTT login says so); never a secret.")
    pending: int = Field(description="Events waiting in the outbox for this target.")


class ModelState(BaseModel):
    """Whether the action model was ever trained, and its backbone's starting weights."""

    trained: bool | None = Field(
        description="False: the model was never trained and its answers are meaningless; null: not recorded."
    )
    backbone: str = Field(description="The backbone's starting weights: a weights file name, 'random' or 'unknown'.")


class Readiness(Health):
    """``/readyz``: readiness, and what the networks run on once they are loaded."""

    model: ModelState | None = Field(
        None, description="Whether the action model was trained (and from which backbone); absent until loaded."
    )

    providers: dict[str, list[str]] | None = Field(
        None,
        description="The ONNX Runtime providers each network (detector, model) actually runs on, best first; "
        "a CPU fallback on a GPU machine shows here. Absent until the networks are loaded.",
    )
    delivery: dict[str, DeliveryState] | None = Field(
        None, description="MQTT and webhook targets, when configured: their state and backlog."
    )
    reasons: list[str] | None = Field(
        None,
        description="While not ready, what keeps it so where the service knows: a compute process restarting "
        "(and why it stopped), a hub's MQTT broker out of reach. Absent when ready or just starting.",
    )


# ------------------------------------------------------------------------------------- WebSocket input
class SubscribeMessage(_Input):
    """``{"type": "subscribe", "cameras": [...], "labels": [...], "tracks": true}``; null means all."""

    type: Literal["subscribe"]
    cameras: list[CameraId] | None = Field(None, max_length=4096, description="Cameras wanted; null: all.")
    labels: list[str] | None = Field(None, max_length=1024, description="Event labels wanted; null: all.")
    tracks: bool = Field(False, description="Also receive live track boxes.")


class PingMessage(_Input):
    """``{"type": "ping"}``, answered with ``{"type": "pong"}``."""

    type: Literal["ping"]


class AuthMessage(_Input):
    """``{"type": "auth", "token": "..."}``: the first message when no token came with the handshake."""

    type: Literal["auth"]
    token: str = Field(max_length=1024)
