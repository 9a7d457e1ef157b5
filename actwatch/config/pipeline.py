"""The ``pipeline:`` section: how the compute loop runs (pipelined phases or one loop, queues, batching,
the detector's share of the cores, compute processes).

Example:
    >>> PipelineConfig().runtime, PipelineConfig(processes=4).processes
    ('pipelined', 4)
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from actwatch.onnx_choices import GpuWait
from actwatch.settings import StrictModel

__all__ = ["PipelineConfig"]


class PipelineConfig(StrictModel):
    """The compute loop."""

    stride: int = Field(5, ge=1, le=1000, description="Classify a track every N new samples.")
    max_tracks_per_camera: int = Field(32, ge=1, le=1000, description="Tracks buffered per camera at most.")
    max_buffer_mb: float = Field(
        512,
        gt=0,
        le=65536,
        description="Memory cap of all track buffers (MiB); it grows to buffer_mb_per_camera per camera with "
        "tracks where that is more.",
    )
    buffer_mb_per_camera: float = Field(
        24,
        ge=0,
        le=4096,
        description="Track-buffer memory per camera with tracks (MiB; a 30-sample window of 112x112 crops and "
        "their features takes about 1.3): the cap is the larger of this times those cameras and max_buffer_mb, "
        "so many cameras do not evict each other's windows before they fill. 0: max_buffer_mb alone.",
    )
    window_gap_s: float = Field(
        2.0,
        gt=0,
        le=3600,
        description="A track unseen for at most this many seconds of stream time keeps its window when it is "
        "re-found (whether it is re-found at all is tracker.lost_track_s); after a longer gap its window "
        "starts afresh and its buffer is freed.",
    )
    tick_interval_s: float = Field(
        0.01, gt=0, le=1, description="Sleep of the compute loop when no camera has a new frame."
    )
    publish_tracks: bool = Field(
        True, description="Broadcast live track boxes to WebSocket clients that subscribed to tracks."
    )
    runtime: Literal["pipelined", "sequential"] = Field(
        "pipelined",
        description="pipelined: each phase (detect, track, encode+head, alerts, event writer) in its own "
        "thread with bounded queues; sequential: one thread runs every phase in turn (the old loop).",
    )
    processes: int = Field(
        1,
        ge=1,
        le=64,
        description="Compute processes the cameras are split over, each running a whole pipeline (capture, "
        "detector, trackers, action model, alert rules) for its share, and upload jobs in the one with the "
        "fewest cameras; the API, event store and delivery stay in the service's process, which then loads no "
        "model. One process's host work runs under one interpreter lock, which bounds a GPU box's frames per "
        "second (README). Each loads the models; unset intra_op_threads and max_buffer_mb are shared out.",
    )
    queue_size: int = Field(1, ge=1, le=64, description="Batches each queue between two phases holds at most.")
    max_frame_age_s: float | None = Field(
        2.0,
        gt=0,
        le=600,
        description="A frame older than this when the detector reaches it is dropped and counted (pipelined); "
        "null: never.",
    )
    max_pending_evidence: int = Field(
        32,
        ge=0,
        le=100000,
        description="Events with snapshot and crops waiting to be written at most; beyond, new events are "
        "written without them (counted). An event itself is never dropped.",
    )
    evidence_workers: int = Field(
        2,
        ge=0,
        le=64,
        description="Threads that render events' snapshot JPEGs and crop strips side by side, ahead of the "
        "event writer that stores them in order (pipelined runtime); 0: the writer renders each itself.",
    )
    track_workers: int = Field(
        1, ge=1, le=64, description="Threads that run the cameras' trackers side by side (1: one after another)."
    )
    detect_batch: int | Literal["auto"] = Field(
        "auto",
        description="Frames per detector call at most (pipelined runtime); the cameras whose frame was taken "
        "longest ago go first. auto: 1 when the detector runs on the CPU (a batch buys a CPU no throughput, "
        "and each frame in it waits for the whole batch), every camera's newest frame on a GPU (whose "
        "throughput comes from batches).",
    )
    detect_workers: int | Literal["auto"] = Field(
        "auto",
        description="Threads that run the detector side by side, each on its own frames (pipelined runtime; 1 "
        "to 64); a camera's next frame waits for its previous one, so tracks see frames in order. With more "
        "than one and detector.intra_op_threads unset, each gets an equal share of the cores. auto: 1.",
    )
    detect_niceness: int | Literal["auto"] = Field(
        "auto",
        description="OS niceness of the detector's threads (pipelined runtime, Linux; 0 to 19): where the "
        "phases share the cores, a frame's later phases (tracking, the action model, the event writer) then go "
        "first and each frame reaches its event sooner; the detector takes the cores they leave. 0: equal "
        "priority. auto: 10 where the detector runs on the CPU, 0 on a GPU (its threads mostly wait there).",
    )

    frame_wait_ms: int | Literal["auto"] = Field(
        "auto",
        description="When the detector is free and the next camera's next frame is due within this many "
        "milliseconds and within 30% of its frame interval (due: its newest frame's capture time plus one "
        "interval), the intake waits for that frame (pipelined runtime): frames reach the detector fresher, "
        "for about wait^2 / (2 x interval) of detector idle per call. 0: never wait. auto: 30 where the "
        "detector runs on the CPU, 0 on a GPU (which takes every camera's frame at once).",
    )
    gpu_wait: GpuWait = Field(
        "auto",
        description="How a thread waits for the GPU to finish a network's run (CUDA's scheduling of the "
        "device's context, set before the first session; both runtimes). spin: polls, keeping a core busy "
        "for the whole wait (the least latency). yield: polls, but gives the core to other threads. blocking: "
        "sleeps until the GPU is done (frees the core, at some latency per call): for boxes whose cores are "
        "the limit, e.g. several services on one GPU. auto: CUDA's choice, which is spin wherever a process "
        "has fewer CUDA contexts than the machine has cores. No effect without an NVIDIA GPU.",
    )

    @field_validator("detect_batch", "detect_niceness", "detect_workers", "frame_wait_ms", mode="before")
    @classmethod
    def _auto_or_in_range(cls, value: Any, info: ValidationInfo) -> Any:
        # One message instead of one per member of the union
        low, high, what = {
            "detect_batch": (1, 4096, "a number of frames"),
            "detect_niceness": (0, 19, "a niceness"),
            "detect_workers": (1, 64, "a number of threads"),
            "frame_wait_ms": (0, 1000, "milliseconds"),
        }[str(info.field_name)]
        if value != "auto" and not (isinstance(value, int) and not isinstance(value, bool) and low <= value <= high):
            raise ValueError(f"must be 'auto' or {what} from {low} to {high}, got {value!r}")
        return value
