"""The compute step's phases as self-contained callables, the small messages between them, and timing.

Each phase is one callable that takes the message of the phase before and returns its own:

    FrameBatch --DetectPhase--> DetectedBatch --TrackPhase--> TrackedBatch
               --ActionPhase--> ClassifiedBatch --AlertPhase--> StepReport

:class:`~actwatch.service.pipeline.StreamPipeline` composes them in one thread (the sequential loop);
:class:`~actwatch.service.staged.StagedRunner` gives each its own thread with bounded queues between
them. Both call the very same phases, so what one runs the other runs. Per-track state is owned by one
phase each: the trackers, scene cuts and static flags by the track phase, the track buffers by the
action phase, the alert state, behaviour signals, live labels and metrics by the alert phase. The end
of a track travels with the batch
(:attr:`TrackedBatch.ended`) so each phase frees its own state in its own thread, in stream order.

:mod:`actwatch.service.step_timing` times each phase (:class:`~actwatch.service.step_timing.PhaseTimer`)
and feeds the metrics (:class:`~actwatch.service.step_timing.StepMetrics`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from actwatch.errors import ActwatchError
from actwatch.model.runtime import RecognitionRuntime
from actwatch.service.alerts import AlertEngine
from actwatch.service.camera_set import CameraFrame
from actwatch.service.events import AlertRecord, Event
from actwatch.service.live_labels import LiveLabels
from actwatch.service.stages import Sink
from actwatch.service.step_timing import CameraStep, PhaseTimer, StageTimes, StepMetrics
from actwatch.signals.stage import SignalStage
from actwatch.tracker.buffers import PendingSample, TrackBufferStore
from actwatch.tracker.bytetrack import CameraTracker
from actwatch.tracker.detections import Detections
from actwatch.tracker.scene_cut import SceneCuts
from actwatch.tracker.static import StaticTracks
from actwatch.tracker.track_end import TrackEndListener, report_camera_dropped, report_ended
from actwatch.tracker.window import TrackWindow

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------- messages
@dataclass(frozen=True, slots=True)
class StepReport:
    """What one step (one batch of frames through every phase) did; the benchmark adds these up.

    Example:
        >>> StepReport.idle().frames
        0
    """

    frames: int
    detections: int
    tracks: int
    crops_encoded: int
    windows_classified: int
    detect_s: float
    track_s: float
    encode_s: float
    classify_s: float
    events: tuple[Event, ...] = ()
    windows: tuple[TrackWindow, ...] = field(default=(), repr=False)
    emit_s: float = 0.0
    began: StageTimes = field(default_factory=StageTimes, repr=False)

    @classmethod
    def idle(cls) -> StepReport:
        return cls(0, 0, 0, 0, 0, 0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True, slots=True, eq=False)
class FrameBatch:
    """The newest frame of every camera that had one, taken together for one detector call.

    ``timer`` is filled in by each phase in turn (one thread at a time: the queues hand it on).
    """

    items: tuple[CameraFrame[CameraTracker], ...]
    timer: PhaseTimer = field(default_factory=PhaseTimer, repr=False)


@dataclass(frozen=True, slots=True, eq=False)
class DetectedBatch:
    """A batch with the persons found in each of its frames."""

    batch: FrameBatch
    detections: tuple[Detections, ...]


@dataclass(frozen=True, slots=True, eq=False)
class TrackedFrame:
    """One camera's frame after the track phase."""

    source: CameraFrame[CameraTracker]
    tracked: Detections
    static: np.ndarray = field(repr=False)  # (len(tracked),) bool: static tracks are shown, never classified


@dataclass(frozen=True, slots=True)
class EndedTracks:
    """Tracks of one camera that ended at this frame (every later phase frees their state)."""

    camera_id: str
    track_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True, eq=False)
class TrackedBatch:
    batch: FrameBatch
    detections: int
    frames: tuple[TrackedFrame, ...]
    ended: tuple[EndedTracks, ...]


@dataclass(frozen=True, slots=True, eq=False)
class ClassifiedBatch:
    tracked: TrackedBatch
    crops_encoded: int
    windows: tuple[TrackWindow, ...]
    probs: np.ndarray = field(repr=False)


@dataclass(frozen=True, slots=True)
class CameraRemoved:
    """Control message: the camera is gone; each phase frees its per-track state, in stream order."""

    camera_id: str


# --------------------------------------------------------------------------------------- phases
class DetectPhase:
    """Persons in every frame of the batch, in one batched detector call."""

    def __init__(self, detector: Callable[[Sequence[np.ndarray]], list[Detections]]) -> None:
        self._detect = detector

    def __call__(self, batch: FrameBatch) -> DetectedBatch:
        with batch.timer.phase("detect"):
            detections = self._detect([item.frame.image for item in batch.items])
        return DetectedBatch(batch, tuple(detections))


class TrackPhase:
    """Each camera's own ByteTrack; the one place where the end of a track is found.

    A scene cut (``scene_cuts``: the frame changed completely) resets the camera's tracker first, so no
    track, and no window, goes on across it. ``static_tracks`` flags tracks whose box and crops have not
    changed for a while (a cloth detected as a person): they are shown but never sampled. Both keep
    per-camera state owned by this phase. With an ``executor`` the cameras' trackers run side by side
    (they share no state); without, in turn.
    """

    def __init__(
        self,
        executor: Executor | None = None,
        *,
        scene_cuts: SceneCuts | None = None,
        static_tracks: StaticTracks | None = None,
    ) -> None:
        self._executor = executor
        self._scene_cuts = scene_cuts
        self._static = static_tracks
        self.listeners: tuple[TrackEndListener, ...] = tuple(x for x in (static_tracks, scene_cuts) if x is not None)

    def drop_camera(self, removed: CameraRemoved) -> None:
        report_camera_dropped(self.listeners, removed.camera_id)

    def __call__(self, detected: DetectedBatch) -> TrackedBatch:
        batch = detected.batch
        with batch.timer.phase("track"):
            cut_ended: dict[str, list[int]] = {}
            for item in batch.items:
                if self._scene_cuts is not None and self._scene_cuts.is_cut(item.camera_id, item.frame.image):
                    item.tracker.reset()
                    cut_ended[item.camera_id] = list(item.tracker.removed_track_ids)
            pairs = list(zip(batch.items, detected.detections, strict=True))
            if self._executor is not None and len(pairs) > 1:
                tracked = list(self._executor.map(_update_tracker, pairs))
            else:
                tracked = [_update_tracker(pair) for pair in pairs]
            ended = []
            for item in batch.items:
                ids = (*cut_ended.get(item.camera_id, ()), *item.tracker.removed_track_ids)
                if ids:
                    ended.append(EndedTracks(item.camera_id, ids))
                    report_ended(self.listeners, item.camera_id, ids)
            frames = tuple(
                TrackedFrame(item, dets, self._static_flags(item, dets))
                for item, dets in zip(batch.items, tracked, strict=True)
            )
        return TrackedBatch(batch, sum(len(d) for d in detected.detections), frames, tuple(ended))

    def _static_flags(self, item: CameraFrame[CameraTracker], tracked: Detections) -> np.ndarray:
        if self._static is None:
            return np.zeros(len(tracked), bool)
        return self._static.flags(item.camera_id, item.frame.image, tracked, item.frame.timestamp)


def _update_tracker(pair: tuple[CameraFrame[CameraTracker], Detections]) -> Detections:
    item, dets = pair
    return item.tracker.update(dets, item.frame.timestamp)


class ActionPhase:
    """Samples every track at the model's fps, crops the due tracks, encodes all new crops of all cameras
    in *one* encoder batch (each crop is encoded once, ever), then runs the head on every track with
    ``stride`` new samples and a full window, all such tracks in one batch.

    Owns the track buffers: ended tracks and removed cameras are freed here, in stream order. Windows
    evicted for memory (they start again, so their tracks go unclassified for a window's length) are
    logged as a warning, at most once a minute.
    """

    WARN_EVERY_S = 60.0

    def __init__(
        self,
        buffers: TrackBufferStore,
        runtime: RecognitionRuntime,
        stride: int,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.buffers = buffers
        self.runtime = runtime
        self.stride = stride
        self._clock = clock
        self._evictions_told = 0  # memory evictions already in a warning
        self._told_at: float | None = None

    def drop_camera(self, removed: CameraRemoved) -> None:
        report_camera_dropped([self.buffers], removed.camera_id)

    def __call__(self, tracked: TrackedBatch) -> ClassifiedBatch:
        timer = tracked.batch.timer
        with timer.phase("encode"):
            for ended in tracked.ended:
                report_ended([self.buffers], ended.camera_id, ended.track_ids)
            pending = self._sample_and_encode(tracked.frames)
        with timer.phase("classify"):
            ready = self.buffers.take_ready_batch(self.stride)
            windows = list(ready.windows)
            probs = self._classify(windows, ready.features)
        self._tell_evictions()
        return ClassifiedBatch(tracked, len(pending), tuple(windows), probs)

    def _tell_evictions(self) -> None:
        evicted = self.buffers.evicted["memory"]
        now = self._clock()
        if evicted > self._evictions_told and (self._told_at is None or now - self._told_at >= self.WARN_EVERY_S):
            b = self.buffers
            log.warning(
                "%d track window(s) evicted for memory (%d in all; buffers hold %.0f of %.0f MiB): their tracks "
                "go unclassified until their windows fill again; raise pipeline.buffer_mb_per_camera or "
                "pipeline.max_buffer_mb",
                evicted - self._evictions_told,
                evicted,
                b.bytes_used / 2**20,
                b.max_total_bytes / 2**20,
            )
            self._evictions_told, self._told_at = evicted, now

    def _sample_and_encode(self, frames: Sequence[TrackedFrame]) -> list[PendingSample]:
        pending: list[PendingSample] = []
        for item in frames:
            pending += self.buffers.sample(item.source.frame, item.tracked.select(~item.static))
        if pending:
            crops = np.stack([p.crop for p in pending])
            if self.runtime.supports_feature_cache:
                features = self.runtime.encode(crops)
            else:  # whole-clip models (R3D-18) keep only crops; a placeholder feature marks the slot
                features = np.zeros((len(pending), 1), np.float32)
            self.buffers.commit(pending, features)
        return pending

    def _classify(self, windows: list[TrackWindow], features: np.ndarray) -> np.ndarray:
        if not windows:
            return np.zeros((0, len(self.runtime.classes)), np.float32)
        if self.runtime.supports_feature_cache:
            return self.runtime.classify(features)  # (B, T, D), the windows' features gathered once
        crops = [w.crops for w in windows]
        if any(c is None for c in crops):
            raise ActwatchError("a whole-clip model needs the track buffers to keep crops (keep_crops=True)")
        return self.runtime.classify_crops(np.stack([c for c in crops if c is not None]))


class AlertPhase:
    """Alert rules -> events (the confirming frame and the window's crops as evidence) to the sink; live
    overlays; the step's metrics. Owns the alert state, the live labels and the per-camera metrics."""

    def __init__(
        self,
        alerts: AlertEngine,
        labels: LiveLabels,
        step_metrics: StepMetrics,
        sink: Sink,
        classes: Sequence[str],
        *,
        publish_tracks: bool,
        signals: SignalStage | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.alerts = alerts
        self.signals = signals
        self.labels = labels
        self.step_metrics = step_metrics
        self.sink = sink
        self.classes = list(classes)
        self.publish_tracks = publish_tracks
        self._clock = clock
        self.listeners: tuple[TrackEndListener, ...] = (
            alerts,
            labels,
            step_metrics,
            *((signals,) if signals is not None else ()),
        )

    def drop_camera(self, removed: CameraRemoved) -> None:
        report_camera_dropped(self.listeners, removed.camera_id)

    def __call__(self, classified: ClassifiedBatch) -> StepReport:
        tracked = classified.tracked
        timer = tracked.batch.timer
        with timer.phase("emit"):
            for ended in tracked.ended:
                report_ended(self.listeners, ended.camera_id, ended.track_ids)
        with timer.phase("signals"):
            signal_events = self._signals(tracked.frames)
        with timer.phase("emit"):
            events = signal_events + self._emit(tracked.frames, classified.windows, classified.probs)
        now = self._clock()
        steps = []
        for item in tracked.frames:
            camera = item.source.camera
            camera.processed_times.append(now)
            steps.append(
                CameraStep(item.source.camera_id, item.source.skipped, len(item.tracked), camera.processed_fps())
            )
        windows = classified.windows
        self.step_metrics.record(timer, steps, encoded=classified.crops_encoded > 0, classified=bool(windows))
        return StepReport(
            frames=len(tracked.frames),
            detections=tracked.detections,
            tracks=sum(len(item.tracked) for item in tracked.frames),
            crops_encoded=classified.crops_encoded,
            windows_classified=len(windows),
            detect_s=timer.seconds("detect"),
            track_s=timer.seconds("track"),
            encode_s=timer.seconds("encode"),
            classify_s=timer.seconds("classify"),
            events=tuple(events),
            windows=windows,
            emit_s=timer.seconds("emit"),
            began=timer.stage_times(),
        )

    def _signals(self, frames: Sequence[TrackedFrame]) -> list[Event]:
        """Behaviour-signal alerts of every tracked person (static or not: a fallen person lies still),
        with the frame that confirmed each."""
        if self.signals is None:
            return []
        events: list[Event] = []
        for item in frames:
            frame = item.source.frame
            for event in self.signals.update(item.source.camera_id, item.tracked, frame):
                self.sink.emit_event(AlertRecord(event, frame.image, None))
                events.append(event)
        return events

    def _emit(self, frames: Sequence[TrackedFrame], windows: Sequence[TrackWindow], probs: np.ndarray) -> list[Event]:
        frames_by_camera = {item.source.camera_id: item.source.frame for item in frames}
        events: list[Event] = []
        for window, p in zip(windows, probs, strict=True):
            best = int(np.argmax(p))
            self.labels.record(window.camera_id, window.track_id, self.classes[best], float(p[best]))
            for event in self.alerts.update(window, p):
                confirming = frames_by_camera.get(window.camera_id)
                image = confirming.image if confirming is not None else None
                self.sink.emit_event(AlertRecord(event, image, window.crop_samples))
                events.append(event)
        if self.publish_tracks:
            for item in frames:
                frame = item.source.frame
                overlay = self.labels.overlay(item.source.camera_id, frame.wall_time, item.tracked, item.static)
                self.sink.emit_tracks(overlay, frame.image)
        return events


@dataclass(frozen=True, slots=True)
class Phases:
    """The four phases of one runtime, made together around the same per-track state
    (:meth:`~actwatch.service.pipeline.StreamPipeline.make_phases`)."""

    detect: DetectPhase
    track: TrackPhase
    action: ActionPhase
    alert: AlertPhase
