"""Response bodies of ``/predictions`` (upload-a-video jobs) and ``/system`` (model and system page).

``POST /predictions`` takes a multipart file, not JSON, so the *create* side is its answer,
:class:`PredictionCreated`; :class:`PredictionPublic` is what ``GET /predictions/{id}`` shows.

Example:
    >>> PredictionCreated(id="ab12").model_dump()
    {'id': 'ab12'}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from actwatch.config import PredictionsConfig
from actwatch.service.predictions import PersonResult, PredictionJob

if TYPE_CHECKING:
    from actwatch.service.staged import StageCounters

JOB_ID_PATTERN = r"^[0-9a-f]{32}$"


class PredictionCreated(BaseModel):
    """Answer of ``POST /predictions``: the new job's id (follow it with ``GET /predictions/{id}``)."""

    id: str = Field(description="Job id.")


class LabelScorePublic(BaseModel):
    label: str = Field(description="A class of the model.")
    score: float = Field(ge=0, le=1, description="Its probability (mean over the person's windows).")


class PersonPublic(BaseModel):
    """One tracked person of the video."""

    track_id: int = Field(description="Tracker id, as drawn in the annotated video.")
    start_s: float = Field(description="First seen, seconds into the video.")
    end_s: float = Field(description="Last seen, seconds into the video.")
    windows: int = Field(description="Windows the model classified for this person.")
    top_label: str = Field(description="The most probable class.")
    probabilities: list[LabelScorePublic] = Field(description="Every class with its probability, high to low.")

    @classmethod
    def build(cls, person: PersonResult) -> PersonPublic:
        return cls(
            track_id=person.track_id,
            start_s=person.start_s,
            end_s=person.end_s,
            windows=person.windows,
            top_label=person.top_label,
            probabilities=[LabelScorePublic(label=p.label, score=p.score) for p in person.probabilities],
        )


class VideoInfo(BaseModel):
    frames: int = Field(description="Frames in the uploaded video.")
    fps: float = Field(description="Its frame rate.")
    width: int
    height: int
    duration_s: float = Field(description="Its length in seconds.")


class PredictionPublic(BaseModel):
    """An upload job: its state and, once done, the people found and the annotated video."""

    id: str
    filename: str = Field(description="Name of the uploaded file.")
    state: Literal["queued", "running", "done", "failed"]
    progress: float = Field(ge=0, le=1, description="Share of the video processed.")
    created_at: float = Field(description="Unix seconds.")
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = Field(None, description="Why the job failed.")
    video: VideoInfo
    persons: list[PersonPublic] = Field(description="Classified people, by first appearance (empty until done).")
    unclassified_tracks: int = Field(0, description="Tracks too short for one window of the model.")
    compute_s: float | None = Field(None, description="Seconds the job computed (its pauses excluded).")
    annotated_video_url: str | None = Field(None, description="The annotated MP4 (H.264), once done.")

    @classmethod
    def build(cls, job: PredictionJob) -> PredictionPublic:
        outcome = job.outcome
        probe = job.probe
        done = job.state.value == "done"
        return cls(
            id=job.id,
            filename=job.filename,
            state=job.state.value,
            progress=round(job.progress, 4),
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            error=job.error,
            video=VideoInfo(
                frames=probe.frames,
                fps=probe.fps,
                width=probe.width,
                height=probe.height,
                duration_s=round(probe.duration_s, 3),
            ),
            persons=[PersonPublic.build(p) for p in outcome.persons] if outcome is not None else [],
            unclassified_tracks=outcome.unclassified_tracks if outcome is not None else 0,
            compute_s=round(outcome.compute_s, 3) if outcome is not None else None,
            annotated_video_url=f"/predictions/{job.id}/video" if done else None,
        )


class PredictionLimits(BaseModel):
    """What an upload may be (the upload page shows it and checks a file before sending it)."""

    available: bool = Field(description="Whether this service takes uploads.")
    max_upload_bytes: int
    max_duration_s: float
    allowed_extensions: list[str]
    max_jobs: int = Field(description="Jobs queued or running at once.")
    retention_s: float = Field(description="How long a finished job is kept.")
    compute_share: float = Field(description="Most share of wall time a job computes.")

    @classmethod
    def build(cls, settings: PredictionsConfig, *, available: bool) -> PredictionLimits:
        return cls(
            available=available,
            max_upload_bytes=settings.max_upload_bytes,
            max_duration_s=settings.max_duration_s,
            allowed_extensions=list(settings.allowed_extensions),
            max_jobs=settings.max_jobs,
            retention_s=settings.retention_s,
            compute_share=settings.compute_share,
        )


class ModelInfo(BaseModel):
    """The action model the service runs."""

    classes: list[str] = Field(description="Its classes, in output order.")
    arch: str | None = Field(None, description="Network architecture (from the manifest).")
    seq_len: int = Field(description="Crops per window.")
    input_size: tuple[int, int] = Field(description="Crop height and width in pixels.")
    fps: float = Field(description="Rate the crops are sampled at.")
    mean: tuple[float, float, float] = Field(description="Normalisation mean (RGB).")
    std: tuple[float, float, float] = Field(description="Normalisation standard deviation (RGB).")
    feature_cache: bool = Field(description="Encoder once per crop + head per window (split graphs).")
    trained: bool | None = Field(
        None, description="False: the model was never trained and its labels are noise; null: not recorded."
    )
    backbone: str | None = Field(None, description="The backbone's starting weights (a file name, 'random').")


class StageTiming(BaseModel):
    """One compute stage's latency per batch, from ``/metrics`` (``actwatch_stage_latency_seconds``)."""

    stage: str
    count: int = Field(description="Batches measured.")
    mean_ms: float | None = Field(None, description="Mean milliseconds per batch (null before the first).")
    total_s: float = Field(description="Seconds spent in the stage since start.")


class PipelineLoad(BaseModel):
    """The pipelined runtime's load since it started (the counters ``/metrics`` has as ``actwatch_pipeline_*``)."""

    occupancy: dict[str, float] = Field(
        description="Share of the time each stage's thread was busy (intake, detect, track, action, alert, "
        "writer): a detector near 1 is the box's limit."
    )
    queue_drops: dict[str, int] = Field(description="Batches each queue between two stages dropped (the oldest).")
    stale_frames: int = Field(description="Frames older than pipeline.max_frame_age_s, dropped before detection.")
    evidence_dropped: int = Field(description="Events stored without snapshot and crops under back-pressure.")
    failures: int = Field(description="Batches a stage failed on (logged; the stage went on).")
    frame_wait_s: float = Field(description="Seconds the intake waited for frames due soon (pipeline.frame_wait_ms).")

    @classmethod
    def build(cls, counters: StageCounters) -> PipelineLoad:
        """The load from the runner's counters (shares to 4 places, seconds to 3)."""
        return cls(
            occupancy={stage: round(share, 4) for stage, share in counters.occupancy.items()},
            queue_drops=counters.drops,
            stale_frames=counters.stale,
            evidence_dropped=counters.evidence_dropped,
            failures=counters.failures,
            frame_wait_s=round(counters.frame_waited_s, 3),
        )


class ComputeProcessInfo(BaseModel):
    """One compute process of a service with ``pipeline.processes`` > 1."""

    index: int = Field(description="The process's number, from 0.")
    pid: int | None = Field(description="Its operating-system process id (null before it started).")
    state: Literal["running", "starting", "restarting"] = Field(
        description="running: its stages are built and it takes cameras; restarting: it died and is started again."
    )
    reason: str | None = Field(None, description="Why it is restarting (credentials masked).")
    cameras: list[str] = Field(description="Ids of the cameras it runs.")
    restarts: int = Field(description="Times it was started again after it died.")
    providers: dict[str, list[str]] = Field(description="ONNX Runtime providers its networks run on, best first.")


class SystemInfo(BaseModel):
    """Answer of ``GET /system``: what the model and system page shows."""

    version: str
    model: ModelInfo | None = Field(None, description="Null where the service runs no pipeline.")
    providers: dict[str, list[str]] = Field(description="ONNX Runtime providers each network runs on, best first.")
    stages: list[StageTiming]
    stride: int = Field(description="Classify a track every this many new samples (pipeline.stride).")
    cameras: int = Field(description="Cameras configured.")
    uploads: PredictionLimits
    pipeline: PipelineLoad | None = Field(
        None, description="The pipelined runtime's load; null with the sequential runtime or before it runs."
    )
    processes: list[ComputeProcessInfo] | None = Field(
        None, description="The compute processes (pipeline.processes > 1); null when one process runs everything."
    )
