"""One compute process of a sharded service (``pipeline.processes`` > 1): its cameras' whole pipeline.

The service's process (:mod:`actwatch.service.shards`) starts each with the configuration and two
bounded queues. The process builds the stages with :func:`~actwatch.service.stages.build_stages`, like a
single-process service, and runs a :class:`~actwatch.service.pipeline.StreamPipeline` over the cameras
it is given. What stays here: frames (the newest per camera, encoded here when the API asks for one:
only the JPEG crosses; and the clip rings, written to the service's clip folder), tracks, windows and
alert state. What goes to the service: events with their evidence rendered here
(``ShardSink.emit_event``: never dropped, a full queue makes the event writer wait), track boxes of
the cameras WebSocket clients subscribe to (dropped and counted when the queue is full), log records,
and a report every ``REPORT_INTERVAL_S`` (camera statuses, stage counters, metric families).

Upload jobs run here too (:class:`UploadJobs`), through the same stages in a thread of their own, at most
``predictions.compute_share`` of the time, as in a one-process service: the service's process then loads
no model at all.

A process whose service has gone (its parent changed) stops by itself; it ignores SIGINT and SIGTERM,
which a terminal's Ctrl-C or systemd send the whole process group: the service stops it.
"""

from __future__ import annotations

import logging
import os
import queue as queue_module
import signal
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from actwatch.config import PredictionsConfig
from actwatch.errors import ActwatchError
from actwatch.service.clips import ClipRecorder, ClipStore
from actwatch.service.events import AlertRecord, FrameOverlay
from actwatch.service.live_frames import LiveFrames
from actwatch.service.messages import TrackInterest
from actwatch.service.metrics import ServiceMetrics
from actwatch.service.predictions import ComputeShare, JobCancelled
from actwatch.service.shard_messages import (
    REPORT_INTERVAL_S,
    AddCamera,
    CancelUpload,
    Command,
    Done,
    LiveFrameReply,
    LiveFrameRequest,
    RemoveCamera,
    Reply,
    RunUpload,
    SetTrackInterest,
    ShardEvent,
    ShardFailed,
    ShardLog,
    ShardReady,
    ShardReport,
    ShardTracks,
    StartCompute,
    StopCompute,
    UpdateCamera,
    UploadFinished,
    UploadProgress,
)
from actwatch.service.sink import render_alert_evidence

if TYPE_CHECKING:
    from multiprocessing.queues import Queue

    from actwatch.config import AppConfig, PipelineConfig
    from actwatch.service.pipeline import StreamPipeline
    from actwatch.service.stages import Stages

log = logging.getLogger(__name__)

ORPHAN_FLUSH_S = 5.0  # how long a process whose service has gone tries to hand over its last messages
PROGRESS_STEP = 0.01  # an upload's progress is sent when it has grown by this much


class ReplySender:
    """Puts replies on the queue to the service: ``send`` waits for room (answers, events), ``offer``
    drops the message and counts it under ``kind`` when the queue is full (track boxes, logs, reports)."""

    def __init__(self, replies: Queue[Reply]) -> None:
        self._replies = replies
        self.dropped: dict[str, int] = {}

    def send(self, message: Reply) -> None:
        self._replies.put(message)

    def offer(self, message: Reply, kind: str) -> None:
        try:
            self._replies.put_nowait(message)
        except queue_module.Full:
            self.dropped[kind] = self.dropped.get(kind, 0) + 1


class ShardSink:
    """The compute process's :class:`~actwatch.service.stages.Sink`: frames stay here (newest frame,
    clip ring), events and track boxes go to the service's :class:`~actwatch.service.sink.EventSink`."""

    def __init__(self, sender: ReplySender, live_frames: LiveFrames, clips: ClipRecorder, *, keep_crops: bool) -> None:
        self._sender = sender
        self._live_frames = live_frames
        self._clips = clips
        self._keep_crops = keep_crops
        # whose track boxes WebSocket clients want (SetTrackInterest); every camera's until told
        self.track_interest = TrackInterest(all_cameras=True)

    def render_evidence(self, alert: AlertRecord) -> AlertRecord:
        """The event writer's render threads call this: only bytes cross to the service."""
        return render_alert_evidence(alert, keep_crops=self._keep_crops)

    def emit_event(self, alert: AlertRecord) -> None:
        if alert.frame_bgr is not None or alert.crops is not None:
            alert = self.render_evidence(alert)
        event = alert.event
        try:
            self._clips.start(event.id, event.camera_id, event.frame_time)
        except Exception:
            log.exception("could not start the clip of event %s", event.id)
        self._sender.send(ShardEvent(alert, time.time()))

    def emit_tracks(self, overlay: FrameOverlay, image: np.ndarray | None = None) -> None:
        if image is not None:
            self._live_frames.put(image, overlay)
            self._clips.add_frame(overlay.camera_id, overlay.frame_time, image)
        if self.track_interest.wants(overlay.camera_id):  # nothing crosses for a camera nobody watches
            self._sender.offer(ShardTracks(overlay), "tracks")


class UploadJobs:
    """The upload jobs the service hands this process: each runs in its own thread through the live
    stages (:func:`~actwatch.service.prediction_run.run_prediction`: the loaded models shared, the job's
    own tracks), paced to ``predictions.compute_share``, and is answered with :class:`UploadFinished`."""

    def __init__(
        self, stages: Stages, pipeline: PipelineConfig, predictions: PredictionsConfig, sender: ReplySender
    ) -> None:
        self._stages = stages
        self._pipeline = pipeline
        self._sender = sender
        self._stopping = threading.Event()
        self._share = ComputeShare(predictions.compute_share, self._stopping)
        self._lock = threading.Lock()
        self._running: dict[int, tuple[threading.Thread, threading.Event]] = {}

    def start(self, command: RunUpload) -> None:
        cancel = threading.Event()
        thread = threading.Thread(
            target=self._run, args=(command, cancel), name=f"actwatch-upload-{command.request}", daemon=True
        )
        with self._lock:
            self._running[command.request] = (thread, cancel)
        thread.start()

    def cancel(self, upload: int) -> None:
        with self._lock:
            running = self._running.get(upload)
        if running is not None:
            running[1].set()

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel every job (each answers ``cancelled``) and wait for their threads."""
        self._stopping.set()
        with self._lock:
            running = list(self._running.values())
        for _, cancel in running:
            cancel.set()
        for thread, _ in running:
            thread.join(timeout)

    def _run(self, command: RunUpload, cancel: threading.Event) -> None:
        from actwatch.service.prediction_run import run_prediction  # numpy, the stages: already loaded here

        sent = 0.0

        def on_progress(fraction: float) -> None:
            nonlocal sent
            if fraction - sent >= PROGRESS_STEP:
                sent = fraction
                self._sender.offer(UploadProgress(command.request, fraction), "progress")

        try:
            outcome = run_prediction(
                self._stages,
                self._pipeline,
                command.video,
                command.probe,
                command.annotated,
                camera_id=command.camera_id,
                on_progress=on_progress,
                pace=self._share.pace,
                cancelled=lambda: cancel.is_set() or self._stopping.is_set(),
            )
            answer = UploadFinished(command.request, outcome)
        except JobCancelled:
            answer = UploadFinished(command.request, None, "cancelled", cancelled=True)
        except ActwatchError as exc:
            answer = UploadFinished(command.request, None, str(exc), user_error=True)
        except Exception as exc:
            log.exception("upload job %s failed", command.camera_id)
            answer = UploadFinished(command.request, None, f"{type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                self._running.pop(command.request, None)
        self._sender.send(answer)


class _LogForwarder(logging.Handler):
    """Sends each record, formatted here, to the service's logging (which redacts secrets and prefixes
    the process: ``[compute N]``)."""

    def __init__(self, sender: ReplySender) -> None:
        super().__init__()
        self._sender = sender

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            self._sender.offer(ShardLog(record.name, record.levelno, text), "logs")
        except Exception:
            self.handleError(record)


def run_shard(
    index: int, config: AppConfig, commands: Queue[Command], replies: Queue[Reply], log_level: int, parent: int
) -> None:
    """The compute process's main function (``multiprocessing`` target)."""
    # Ctrl-C in a terminal, or systemd stopping the unit, signals the whole process group: the service
    # stops its compute processes itself, in order (their last events stored), and one whose service has
    # gone stops by itself, so neither signal may cut this one short (SIGKILL still does).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sender = ReplySender(replies)
    root = logging.getLogger()
    root.handlers[:] = [_LogForwarder(sender)]
    root.setLevel(log_level)
    logging.captureWarnings(True)
    live_frames = LiveFrames(config.media.live_share_ms / 1000)
    clips = ClipRecorder(ClipStore(config.media_dir / "clips", config.media.clips.retention_days), config.media.clips)
    sink = ShardSink(sender, live_frames, clips, keep_crops=config.storage.keep_crops)
    metrics = ServiceMetrics()
    try:
        pipeline = _build_pipeline(config, sink, metrics)
    except ActwatchError as exc:
        sender.send(ShardFailed(str(exc), user_error=True))
        return
    except Exception as exc:
        log.exception("could not build the compute stages")
        sender.send(ShardFailed(f"{type(exc).__name__}: {exc}", user_error=False))
        return
    from actwatch.service.prediction_run import model_info

    provenance = metrics.model_provenance()
    sender.send(ShardReady(metrics.active_providers(), provenance, model_info(pipeline.stages.runtime, provenance)))
    uploads = UploadJobs(pipeline.stages, config.pipeline, config.predictions, sender)
    compute = _Compute(pipeline, sink, uploads, live_frames, clips, metrics, sender)
    orphaned = False
    try:
        orphaned = _serve(compute, commands, parent)
    finally:
        compute.stop()
        if orphaned:
            _flush_at_most(replies, ORPHAN_FLUSH_S)


def _flush_at_most(replies: Queue[Reply], seconds: float) -> None:
    """Let the queue's feeder thread write what it holds for ``seconds`` at most: with nobody reading, a
    full pipe would otherwise keep this process from exiting (the exit joins that thread)."""
    replies.close()
    joiner = threading.Thread(target=replies.join_thread, name="actwatch-flush", daemon=True)
    joiner.start()
    joiner.join(seconds)
    replies.cancel_join_thread()


def _build_pipeline(config: AppConfig, sink: ShardSink, metrics: ServiceMetrics) -> StreamPipeline:
    from actwatch.service.pipeline import StreamPipeline
    from actwatch.service.stages import build_stages

    return StreamPipeline(build_stages(config, sink=sink, metrics=metrics))


@dataclass(frozen=True, slots=True)
class _Compute:
    """What a compute process's command loop works on."""

    pipeline: StreamPipeline
    sink: ShardSink
    uploads: UploadJobs
    live_frames: LiveFrames
    clips: ClipRecorder
    metrics: ServiceMetrics
    sender: ReplySender

    def stop(self) -> None:
        """Cancel the upload jobs, stop the pipeline and the cameras, write the clips still collecting."""
        self.uploads.stop()
        self.pipeline.stop()
        self.clips.close()

    def report(self) -> ShardReport:
        return ShardReport(
            statuses=tuple(self.pipeline.statuses()),
            counters=self.pipeline.stage_counters(),
            families=list(self.metrics.registry.collect()),
            dropped=dict(self.sender.dropped),
        )


def _serve(compute: _Compute, commands: Queue[Command], parent: int) -> bool:
    """Answer commands and report until told to stop (``False``) or the service has gone (``True``)."""
    sender = compute.sender
    next_report = time.monotonic()
    while os.getppid() == parent:  # the service died (even by SIGKILL): stop too
        try:
            command = commands.get(timeout=max(0.0, next_report - time.monotonic()))
        except queue_module.Empty:
            command = None
        if isinstance(command, StopCompute):
            compute.stop()
            sender.send(compute.report())
            sender.send(Done(command.request))
            return False
        if command is not None and (answer := _answer(command, compute)) is not None:
            sender.send(answer)
        if time.monotonic() >= next_report:
            sender.offer(compute.report(), "reports")
            next_report = time.monotonic() + REPORT_INTERVAL_S
    log.warning("the service's process has gone; stopping")
    return True


def _answer(
    command: AddCamera
    | UpdateCamera
    | RemoveCamera
    | StartCompute
    | LiveFrameRequest
    | SetTrackInterest
    | RunUpload
    | CancelUpload,
    compute: _Compute,
) -> Done | LiveFrameReply | None:
    """Carry out ``command``; its answer, or ``None`` for an upload job (answered when it ends)."""
    if isinstance(command, LiveFrameRequest):
        try:
            jpeg = compute.live_frames.latest_jpeg(command.camera_id, command.view, command.known_sequence)
        except Exception:  # an image OpenCV cannot encode: no frame for this request, the camera goes on
            log.exception("could not encode the live frame of %s", command.camera_id)
            jpeg = None
        return LiveFrameReply(command.request, jpeg)
    if isinstance(command, RunUpload):
        compute.uploads.start(command)
        return None
    pipeline = compute.pipeline
    try:
        if isinstance(command, CancelUpload):
            compute.uploads.cancel(command.upload)
        elif isinstance(command, SetTrackInterest):
            compute.sink.track_interest = command.interest
        elif isinstance(command, AddCamera):
            pipeline.add_camera(command.camera)
        elif isinstance(command, UpdateCamera):
            pipeline.update_camera(command.camera)
        elif isinstance(command, RemoveCamera):
            pipeline.remove_camera(command.camera_id)
            compute.live_frames.forget(command.camera_id)
            compute.clips.forget(command.camera_id)
        elif isinstance(command, StartCompute):
            pipeline.start()
    except ActwatchError as exc:
        return Done(command.request, str(exc), user_error=True)
    except Exception as exc:
        log.exception("%s failed", type(command).__name__)
        return Done(command.request, f"{type(exc).__name__}: {exc}")
    return Done(command.request)
