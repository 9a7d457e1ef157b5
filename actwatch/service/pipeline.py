"""The compute loop: the stages built by :func:`~actwatch.service.stages.build_stages`, run step by step.

One thread runs :meth:`StreamPipeline.step` in a loop. Each step takes the newest frame of every camera
(from the :class:`~actwatch.service.camera_set.CameraSet`; readers keep at most 1-2, older ones are
dropped and counted) and runs these phases, each timed by one :class:`~actwatch.service.phases.PhaseTimer`:

1. **detect** — persons in all those frames in *one* batched detector call;
2. **track** — each camera's own ByteTrack; the ends of tracks are reported here, once, to everything
   that keeps per-track state (buffers, alert rules, live labels, metrics: the
   :class:`~actwatch.tracker.track_end.TrackEndListener` protocol);
3. **signals** — the behaviour signals (``fallen``, ``loitering``, ``running``) of every tracked person,
   full window or not, static or not, through the signal labels' alert rules
   (:class:`~actwatch.signals.stage.SignalStage`);
4. **encode** — samples every track at the model's fps, crops the due tracks and encodes all new crops
   of all cameras in *one* ``encoder.onnx`` batch (each crop is encoded once, ever);
5. **classify** — ``head.onnx`` on the cached features of every track with ``stride`` new samples and a
   full window, all such tracks in one batch;
6. **emit** — alert rules; events of both (with the confirming frame and the window's crops as evidence) and
   live track boxes go to the :class:`~actwatch.service.stages.Sink`.

A failing step is logged and the loop goes on: one bad frame or camera never stops the others.

Example (a fake detector that finds nobody, one step at a time — what the tests and the benchmark do
with the real stages):

    >>> import tempfile, pathlib, numpy as np
    >>> from actwatch.capture.frame import Frame
    >>> from actwatch.capture.handoff import DropOldestQueue
    >>> from actwatch.capture.sources import SourceSpec
    >>> from actwatch.config import CameraConfig
    >>> from actwatch.model.config import InputSpec
    >>> from actwatch.service.alerts import AlertEngine
    >>> from actwatch.service.metrics import ServiceMetrics
    >>> from actwatch.service.stages import Stages
    >>> from actwatch.tracker.buffers import TrackBufferStore
    >>> from actwatch.tracker.bytetrack import CameraTracker
    >>> from actwatch.tracker.detections import Detections
    >>> class Nobody:
    ...     def detect(self, images): return [Detections.empty() for _ in images]
    >>> class Runtime:
    ...     classes, spec, supports_feature_cache = ["walking"], InputSpec(seq_len=4, input_size=(32, 32)), True
    >>> class Replay:  # two frames, then the end
    ...     def __init__(self, camera_id):
    ...         self.source, self.frame_rate = SourceSpec.parse("rtsp://cam.local/1"), 10.0
    ...         self.frames = DropOldestQueue(maxsize=2)
    ...         self.pending = [Frame(camera_id, i, i / 10, 0.0, np.zeros((48, 64, 3), np.uint8)) for i in range(2)]
    ...     def feed(self):
    ...         if self.pending: self.frames.put(self.pending.pop(0)); return True
    ...         self.frames.close(); return False
    ...     def start(self): pass
    ...     def stop(self, timeout=0.0): pass
    ...     def status(self): return None
    >>> class Sink:
    ...     def emit_event(self, alert): pass
    ...     def emit_tracks(self, overlay): pass
    >>> replay = Replay("cam1")
    >>> pipeline = StreamPipeline(Stages(
    ...     reader_factory=lambda camera: replay, detector=Nobody(), tracker_factory=CameraTracker,
    ...     buffers=TrackBufferStore(Runtime.spec), runtime=Runtime(), alerts=AlertEngine([], ["walking"]),
    ...     sink=Sink(), metrics=ServiceMetrics()))
    >>> pipeline.add_camera(CameraConfig(id="cam1", url="rtsp://cam.local/1"))
    >>> reports = []
    >>> while replay.feed():
    ...     reports.append(pipeline.step())
    >>> [r.frames for r in reports], pipeline.step().frames, pipeline.all_ended()
    ([1, 1], 0, True)
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from actwatch.capture.reader import CameraStatus
from actwatch.config import CameraConfig
from actwatch.errors import ActwatchError
from actwatch.service.camera_set import CameraFrame, CameraSet
from actwatch.service.events import AlertRecord, Event
from actwatch.service.live_labels import LiveLabels
from actwatch.service.phases import CameraStep, PhaseTimer, StepMetrics
from actwatch.service.stages import Stages
from actwatch.tracker.buffers import PendingSample
from actwatch.tracker.bytetrack import CameraTracker
from actwatch.tracker.detections import Detections
from actwatch.tracker.scene_cut import SceneCuts
from actwatch.tracker.static import StaticTracks
from actwatch.tracker.track_end import TrackEndListener, report_camera_dropped, report_ended
from actwatch.tracker.window import TrackWindow

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StepReport:
    """What one :meth:`StreamPipeline.step` did; the benchmark adds these up.

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

    @classmethod
    def idle(cls) -> StepReport:
        return cls(0, 0, 0, 0, 0, 0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True, slots=True, eq=False)
class _Tracked:
    """One camera's frame after the track phase."""

    source: CameraFrame[CameraTracker]
    tracked: Detections
    static: np.ndarray  # (len(tracked),) bool: static tracks are not sampled, so never classified


class StreamPipeline:
    """Cameras -> batched detection -> per-camera ByteTrack -> feature-cached windows -> alerts.

    Implements :class:`~actwatch.service.controller.CameraController` for the API. Its parts each have
    one owner: the cameras a :class:`~actwatch.service.camera_set.CameraSet`, the overlay labels a
    :class:`~actwatch.service.live_labels.LiveLabels`, the metrics a
    :class:`~actwatch.service.phases.StepMetrics`; this class runs the step and the thread.
    """

    def __init__(self, stages: Stages) -> None:
        if stages.stride < 1:
            raise ValueError("stride must be >= 1")
        self.stages = stages
        self.detector = stages.detector
        self.runtime = stages.runtime
        self.buffers = stages.buffers
        self.alerts = stages.alerts
        self.sink = stages.sink
        self.stride = stages.stride
        self.publish_tracks = stages.publish_tracks
        self.signals = stages.signals
        self.cameras: CameraSet[CameraTracker] = CameraSet(stages.reader_factory, stages.tracker_factory)
        self.labels = LiveLabels()
        self.scene_cuts = SceneCuts(stages.tracker.scene_cut)
        self.static_tracks = StaticTracks(stages.tracker.static)
        self.step_metrics = StepMetrics(stages.metrics)
        # Everything that keeps per-track state, told once when a track ends or a camera goes.
        self._track_listeners: tuple[TrackEndListener, ...] = (
            self.buffers,
            self.alerts,
            self.labels,
            self.static_tracks,
            self.scene_cuts,
            self.step_metrics,
            *((self.signals,) if self.signals is not None else ()),
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.step_failures = 0

    # ------------------------------------------------------------------------- CameraController
    def start(self) -> None:
        """Start the compute thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="actwatch-pipeline", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the compute thread and every camera reader."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.cameras.stop_all()

    def add_camera(self, cfg: CameraConfig) -> None:
        """Start reading ``cfg``; a bad URL raises :class:`~actwatch.errors.ActwatchError`."""
        self.cameras.add(cfg)
        self._set_zone(cfg)

    def update_camera(self, cfg: CameraConfig) -> None:
        """Apply a new name or zone without reconnecting."""
        self.cameras.update(cfg)
        self._set_zone(cfg)

    def _set_zone(self, cfg: CameraConfig) -> None:
        self.alerts.set_zone(cfg.id, cfg.zone)
        if self.signals is not None:
            self.signals.set_zone(cfg.id, cfg.zone)

    def remove_camera(self, camera_id: str) -> None:
        """Stop the camera; its tracks, buffers and alert state are freed by the compute thread."""
        self.cameras.remove(camera_id)
        if self._thread is None or not self._thread.is_alive():
            self._free_removed()

    def statuses(self) -> list[CameraStatus]:
        return self.cameras.statuses()

    def ready(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    # ------------------------------------------------------------------------------------ helpers
    def camera_ids(self) -> list[str]:
        return self.cameras.ids()

    def all_ended(self) -> bool:
        """Whether every camera's stream has ended (finite files only; live cameras never end)."""
        return self.cameras.all_ended()

    def processed_fps(self, camera_id: str) -> float:
        return self.cameras.processed_fps(camera_id)

    # ---------------------------------------------------------------------------------- the loop
    def _run(self) -> None:
        log.info("pipeline started")
        while not self._stop.is_set():
            try:
                report = self.step()
            except Exception:  # one bad frame must not stop every camera
                self.step_failures += 1
                log.exception("pipeline step failed; continuing")
                report = StepReport.idle()
            if report.frames == 0:
                self._stop.wait(self.stages.idle_sleep_s)
        log.info("pipeline stopped")

    def _free_removed(self) -> None:
        for camera_id in self.cameras.take_removed():
            report_camera_dropped(self._track_listeners, camera_id)

    def step(self) -> StepReport:
        """Process the newest frame of every camera once; return what was done."""
        self._free_removed()
        batch = self.cameras.newest_frames()
        if not batch:
            return StepReport.idle()
        now = time.perf_counter()
        timer = PhaseTimer()
        with timer.phase("detect"):
            detections = self.detector.detect([item.frame.image for item in batch])
        with timer.phase("track"):
            tracked = self._track(batch, detections)
        with timer.phase("signals"):
            signal_alerts = self._signals(tracked)
        with timer.phase("encode"):
            pending = self._sample_and_encode(tracked)
        with timer.phase("classify"):
            windows = self.buffers.take_ready(self.stride)
            probs = self._classify(windows)
        with timer.phase("emit"):
            events = self._emit(tracked, windows, probs, signal_alerts)

        steps = []
        for item in tracked:
            camera = item.source.camera
            camera.processed_times.append(now)
            steps.append(
                CameraStep(item.source.camera_id, item.source.skipped, len(item.tracked), camera.processed_fps())
            )
        self.step_metrics.record(timer, steps, encoded=bool(pending), classified=bool(windows))
        return StepReport(
            frames=len(batch),
            detections=sum(len(d) for d in detections),
            tracks=sum(len(item.tracked) for item in tracked),
            crops_encoded=len(pending),
            windows_classified=len(windows),
            detect_s=timer.seconds("detect"),
            track_s=timer.seconds("track"),
            encode_s=timer.seconds("encode"),
            classify_s=timer.seconds("classify"),
            events=tuple(events),
            windows=tuple(windows),
        )

    # ---------------------------------------------------------------------------------- phases
    def _track(self, batch: list[CameraFrame[CameraTracker]], detections: list[Detections]) -> list[_Tracked]:
        """Each camera's own ByteTrack; the one place where the end of a track is reported."""
        out = []
        for item, dets in zip(batch, detections, strict=True):
            if self.scene_cuts.is_cut(item.camera_id, item.frame.image):
                # A new scene: no track (and so no window) goes on across the cut.
                item.tracker.reset()
                report_ended(self._track_listeners, item.camera_id, item.tracker.removed_track_ids)
            tracked = item.tracker.update(dets, item.frame.timestamp)
            report_ended(self._track_listeners, item.camera_id, item.tracker.removed_track_ids)
            static = self.static_tracks.flags(item.camera_id, item.frame.image, tracked, item.frame.timestamp)
            out.append(_Tracked(item, tracked, static))
        return out

    def _signals(self, tracked: list[_Tracked]) -> list[AlertRecord]:
        """Behaviour-signal alerts of every tracked person, with the frame that confirmed each."""
        if self.signals is None:
            return []
        records = []
        for item in tracked:
            frame = item.source.frame
            for event in self.signals.update(item.source.camera_id, item.tracked, frame):
                records.append(AlertRecord(event, frame.image, None))
        return records

    def _sample_and_encode(self, tracked: list[_Tracked]) -> list[PendingSample]:
        """Every new crop of every camera encoded once, in one batch, and committed to its window."""
        pending: list[PendingSample] = []
        for item in tracked:
            pending += self.buffers.sample(item.source.frame, item.tracked.select(~item.static))
        if pending:
            crops = np.stack([p.crop for p in pending])
            if self.runtime.supports_feature_cache:
                features = self.runtime.encode(crops)
            else:  # whole-clip models (R3D-18) keep only crops; a placeholder feature marks the slot
                features = np.zeros((len(pending), 1), np.float32)
            self.buffers.commit(pending, features)
        return pending

    def _classify(self, windows: list[TrackWindow]) -> np.ndarray:
        if not windows:
            return np.zeros((0, len(self.runtime.classes)), np.float32)
        if self.runtime.supports_feature_cache:
            return self.runtime.classify(np.stack([w.features for w in windows]))
        crops = [w.crops for w in windows]
        if any(c is None for c in crops):
            raise ActwatchError("a whole-clip model needs the track buffers to keep crops (keep_crops=True)")
        return self.runtime.classify_crops(np.stack([c for c in crops if c is not None]))

    def _emit(
        self, tracked: list[_Tracked], windows: list[TrackWindow], probs: np.ndarray, signal_alerts: list[AlertRecord]
    ) -> list[Event]:
        """Alert rules -> events (snapshot of the confirming frame, crops as evidence); live overlays."""
        frames_by_camera = {item.source.camera_id: item.source.frame for item in tracked}
        events: list[Event] = []
        for record in signal_alerts:
            self.sink.emit_event(record)
            events.append(record.event)
        for window, p in zip(windows, probs, strict=True):
            best = int(np.argmax(p))
            self.labels.record(window.camera_id, window.track_id, self.runtime.classes[best], float(p[best]))
            for event in self.alerts.update(window, p):
                confirming = frames_by_camera.get(window.camera_id)
                image = confirming.image if confirming is not None else None
                self.sink.emit_event(AlertRecord(event, image, window.crops))
                events.append(event)
        if self.publish_tracks:
            for item in tracked:
                frame = item.source.frame
                overlay = self.labels.overlay(item.source.camera_id, frame.wall_time, item.tracked, item.static)
                self.sink.emit_tracks(overlay)
        return events
