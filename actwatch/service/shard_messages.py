"""What the service's process and its compute processes (``pipeline.processes`` > 1) send each other.

Every message is a small frozen dataclass, pickled through one bounded ``multiprocessing`` queue each
way per compute process (:mod:`actwatch.service.shards` in the service, :mod:`actwatch.service.shard_worker`
in each compute process). Commands carry a ``request`` number; the compute process answers each with a
:class:`Done` (or a :class:`LiveFrameReply`, or an upload job's :class:`UploadFinished`) of the same number.

Example:
    >>> from actwatch.config import CameraConfig
    >>> AddCamera(7, CameraConfig(id="cam1", url="rtsp://10.0.0.5/s")).request
    7
    >>> Done(7, error="no such file", user_error=True).error
    'no such file'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actwatch.capture.reader import CameraStatus
from actwatch.capture.video_file import VideoProbe
from actwatch.config import CameraConfig
from actwatch.model.provenance import ModelProvenance
from actwatch.service.events import AlertRecord, FrameOverlay
from actwatch.service.live_frames import LiveJpeg, LiveView
from actwatch.service.messages import TrackInterest
from actwatch.service.prediction_schemas import ModelInfo
from actwatch.service.predictions import PredictionOutcome
from actwatch.service.staged import StageCounters

# --------------------------------------------------------------------- service -> compute process


@dataclass(frozen=True, slots=True)
class AddCamera:
    """Start reading ``camera`` (enabled) and use its zone."""

    request: int
    camera: CameraConfig


@dataclass(frozen=True, slots=True)
class UpdateCamera:
    """A running camera's new name or zone (no reconnect)."""

    request: int
    camera: CameraConfig


@dataclass(frozen=True, slots=True)
class RemoveCamera:
    """Stop the camera and drop its tracks, alert state, newest frame and clip ring."""

    request: int
    camera_id: str


@dataclass(frozen=True, slots=True)
class StartCompute:
    """Start the pipeline (after the configured cameras were added)."""

    request: int


@dataclass(frozen=True, slots=True)
class StopCompute:
    """Stop the pipeline and the cameras, write the clips still collecting, then exit."""

    request: int


@dataclass(frozen=True, slots=True)
class LiveFrameRequest:
    """The camera's newest processed frame as a JPEG of ``view``, unless it is still the one numbered
    ``known_sequence`` (encoded in the compute process: only the JPEG crosses)."""

    request: int
    camera_id: str
    view: LiveView
    known_sequence: int = 0


@dataclass(frozen=True, slots=True)
class SetTrackInterest:
    """Send the track boxes of these cameras only (what WebSocket clients subscribe to); a process sends
    every camera's until it is first told."""

    request: int
    interest: TrackInterest


@dataclass(frozen=True, slots=True)
class RunUpload:
    """Run one upload job through the process's stages (shared models, the job's own tracks), writing the
    annotated video to ``annotated``; answered by :class:`UploadFinished` of the same number, with
    :class:`UploadProgress` on the way. Paths are the service's own job folder, never a client's."""

    request: int
    camera_id: str
    video: Path
    probe: VideoProbe
    annotated: Path


@dataclass(frozen=True, slots=True)
class CancelUpload:
    """Stop the upload job started by the :class:`RunUpload` numbered ``upload`` (after its current frame)."""

    request: int
    upload: int


Command = (
    AddCamera
    | UpdateCamera
    | RemoveCamera
    | StartCompute
    | StopCompute
    | LiveFrameRequest
    | SetTrackInterest
    | RunUpload
    | CancelUpload
)

# --------------------------------------------------------------------- compute process -> service


@dataclass(frozen=True, slots=True)
class ShardReady:
    """The compute process built its stages (models loaded and warmed up)."""

    providers: dict[str, list[str]]
    provenance: ModelProvenance | None
    model: ModelInfo  # the action model, as /system and the upload page describe it


@dataclass(frozen=True, slots=True)
class ShardFailed:
    """The compute process could not build its stages; ``user_error``: a configuration or file problem
    the message explains (shown as ``error: …``), not a crash."""

    message: str
    user_error: bool


@dataclass(frozen=True, slots=True)
class Done:
    """A command's answer: ``error`` is ``None`` when it worked."""

    request: int
    error: str | None = None
    user_error: bool = False


@dataclass(frozen=True, slots=True)
class LiveFrameReply:
    """The answer to a :class:`LiveFrameRequest`: ``None`` when there is no newer frame (or none)."""

    request: int
    frame: LiveJpeg | None


@dataclass(frozen=True, slots=True)
class UploadProgress:
    """The share of an upload job's frames done (the job is the :class:`RunUpload` numbered ``request``)."""

    request: int
    fraction: float


@dataclass(frozen=True, slots=True)
class UploadFinished:
    """The answer to a :class:`RunUpload`: its ``outcome``, or why there is none (``cancelled``; a
    ``user_error`` such as an unreadable video; else an internal failure, logged in the process)."""

    request: int
    outcome: PredictionOutcome | None
    error: str | None = None
    user_error: bool = False
    cancelled: bool = False


@dataclass(frozen=True, slots=True)
class ShardEvent:
    """An alert, its evidence already rendered (``snapshot_jpeg``/``crops_png``; no arrays); ``sent_at``:
    the wall clock when the compute process sent it (the hand-off's share of frame-to-event)."""

    alert: AlertRecord
    sent_at: float


@dataclass(frozen=True, slots=True)
class ShardTracks:
    """One processed frame's track boxes (no image: frames stay in the compute process)."""

    overlay: FrameOverlay


@dataclass(frozen=True, slots=True)
class ShardReport:
    """What the compute process reports every ``REPORT_INTERVAL_S``: its cameras, its pipelined runtime's
    counters, its Prometheus metric families and how many of its messages a full queue dropped."""

    statuses: tuple[CameraStatus, ...]
    counters: StageCounters | None
    families: list[Any] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ShardLog:
    """A log record of the compute process, already formatted (its arguments never cross); the service
    logs it prefixed ``[compute N]``."""

    name: str
    level: int
    message: str


Reply = (
    ShardReady
    | ShardFailed
    | Done
    | LiveFrameReply
    | UploadProgress
    | UploadFinished
    | ShardEvent
    | ShardTracks
    | ShardReport
    | ShardLog
)
Answer = Done | LiveFrameReply | UploadFinished  # what answers a command (by its number)

# How often a compute process reports (statuses and metrics in the service are this old at most).
REPORT_INTERVAL_S = 0.5
