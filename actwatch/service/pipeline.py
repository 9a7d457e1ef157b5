"""The compute pipeline: the stages built by :func:`~actwatch.service.stages.build_stages`, run as
phases over batches of frames.

Each batch is the newest frame of every camera (from the :class:`~actwatch.service.camera_set.CameraSet`;
readers keep at most 1-2, older ones are dropped and counted; pipelined, of ``detect_batch`` cameras at
most, in turn) and goes through these phases
(:mod:`actwatch.service.phases`, each a self-contained callable timed by a
:class:`~actwatch.service.step_timing.PhaseTimer`):

1. **detect** — persons in all those frames in *one* batched detector call;
2. **track** — each camera's own ByteTrack; the ends of tracks are found here, once, and travel with
   the batch to everything that keeps per-track state (buffers, alert rules, live labels, metrics: the
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

The service runs them pipelined (``pipeline.runtime: pipelined``, the default): each phase in its own
thread with bounded queues between them and events written by a bounded writer off the compute path
(:class:`~actwatch.service.staged.StagedRunner`). ``pipeline.runtime: sequential`` keeps the one
compute thread that runs :meth:`StreamPipeline.step` in a loop, every phase in turn (the baseline of
``actwatch bench --sequential``). A failing batch is logged and the pipeline goes on: one bad frame or
camera never stops the others.

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
    ...     def emit_tracks(self, overlay, image=None): pass
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
from collections.abc import Callable
from concurrent.futures import Executor

from actwatch.capture.reader import CameraStatus
from actwatch.config import CameraConfig
from actwatch.service.camera_set import CameraSet
from actwatch.service.live_labels import LiveLabels
from actwatch.service.phases import (
    ActionPhase,
    AlertPhase,
    DetectPhase,
    FrameBatch,
    Phases,
    StepReport,
    TrackPhase,
)
from actwatch.service.staged import StageCounters, StagedRunner
from actwatch.service.stages import Sink, Stages
from actwatch.service.step_timing import StepMetrics
from actwatch.tracker.bytetrack import CameraTracker
from actwatch.tracker.scene_cut import SceneCuts
from actwatch.tracker.static import StaticTracks
from actwatch.tracker.track_end import TrackEndListener, report_camera_dropped

__all__ = ["StepReport", "StreamPipeline"]

log = logging.getLogger(__name__)

ReportCallback = Callable[[StepReport], None]


class StreamPipeline:
    """Cameras -> batched detection -> per-camera ByteTrack -> feature-cached windows -> alerts.

    Implements :class:`~actwatch.service.controller.CameraController` for the API. Its parts each have
    one owner: the cameras a :class:`~actwatch.service.camera_set.CameraSet`, the overlay labels a
    :class:`~actwatch.service.live_labels.LiveLabels`, the metrics a
    :class:`~actwatch.service.step_timing.StepMetrics`; this class runs the phases, in one thread
    (:meth:`step`) or pipelined (:meth:`staged`).
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
        # The sequential loop's phases; a StagedRunner makes its own around the same state.
        phases = self.make_phases(self.sink)
        self._detect, self._track, self._action, self._alert = phases.detect, phases.track, phases.action, phases.alert
        # Everything that keeps per-track state, told when a camera goes.
        self._track_listeners: tuple[TrackEndListener, ...] = (
            *self._track.listeners,
            self.buffers,
            *self._alert.listeners,
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._runner: StagedRunner | None = None
        self.step_failures = 0

    def make_phases(self, sink: Sink, executor: Executor | None = None) -> Phases:
        """The four phases around this pipeline's per-track state, sending events to ``sink`` (the
        sequential loop: the sink itself; the pipelined runtime: its bounded writer)."""
        return Phases(
            detect=DetectPhase(self.detector.detect),
            track=TrackPhase(executor, scene_cuts=self.scene_cuts, static_tracks=self.static_tracks),
            action=ActionPhase(self.buffers, self.runtime, self.stride),
            alert=AlertPhase(
                self.alerts,
                self.labels,
                self.step_metrics,
                sink,
                self.runtime.classes,
                publish_tracks=self.publish_tracks,
                signals=self.signals,
            ),
        )

    # ------------------------------------------------------------------------- CameraController
    def start(self, on_report: ReportCallback | None = None) -> None:
        """Start computing (idempotent): pipelined threads, or the one sequential thread, as configured.

        ``on_report`` is called with each batch's :class:`StepReport` (the benchmark's figures).
        """
        if self.ready():
            return
        self._stop.clear()
        if self.stages.runtime_mode == "pipelined":
            self._runner = self.staged(intake=True, lossless=False, on_report=on_report)
            s = self.stages
            batch = "every camera's newest frame" if s.detect_batch is None else f"at most {s.detect_batch} frame(s)"
            log.info(
                "pipeline started (pipelined: %s per detector call, detector niceness %d%s)",
                batch,
                s.detect_niceness,
                f", {s.detect_workers} detect workers" if s.detect_workers > 1 else "",
            )
            return
        self._thread = threading.Thread(target=self._run, args=(on_report,), name="actwatch-pipeline", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop computing and every camera reader."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._runner is not None:
            self._runner.stop(timeout)
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
        """Stop the camera; its tracks, buffers and alert state are freed by the compute phases."""
        self.cameras.remove(camera_id)
        if not self._computing():
            self._free_removed()

    def statuses(self) -> list[CameraStatus]:
        return self.cameras.statuses()

    def ready(self) -> bool:
        if self._stop.is_set():
            return False
        if self._runner is not None:
            return self._runner.running()
        return self._thread is not None and self._thread.is_alive()

    def not_ready_reasons(self) -> list[str]:
        return []  # starting (models load before the app serves) or stopping: nothing more to say

    # ------------------------------------------------------------------------------------ helpers
    def camera_ids(self) -> list[str]:
        return self.cameras.ids()

    def all_ended(self) -> bool:
        """Whether every camera's stream has ended (finite files only; live cameras never end)."""
        return self.cameras.all_ended()

    def processed_fps(self, camera_id: str) -> float:
        return self.cameras.processed_fps(camera_id)

    def staged(
        self, *, intake: bool = False, lossless: bool = True, on_report: ReportCallback | None = None
    ) -> StagedRunner:
        """Start the phases pipelined, with this pipeline's settings, and return the runner.

        Without ``intake`` the caller hands in batches (:meth:`StagedRunner.submit`) and waits for them
        (:meth:`StagedRunner.flush`); ``lossless`` makes every queue block instead of dropping.
        """
        if self._runner is not None and self._runner.running():
            raise RuntimeError("the pipeline is already running pipelined")
        s = self.stages
        self._runner = StagedRunner(
            self,
            intake=intake,
            lossless=lossless,
            queue_size=s.queue_size,
            max_frame_age_s=None if lossless else s.max_frame_age_s,
            max_pending_evidence=s.max_pending_evidence,
            evidence_workers=s.evidence_workers,
            track_workers=s.track_workers,
            detect_batch=s.detect_batch,
            detect_niceness=s.detect_niceness,
            detect_workers=s.detect_workers,
            frame_wait_s=s.frame_wait_s,  # only the intake waits: without it the caller times the batches
            on_report=on_report,
        )
        return self._runner

    def stage_counters(self) -> StageCounters | None:
        """The pipelined runtime's counters since it started (``None`` before, or when sequential)."""
        return self._runner.counters() if self._runner is not None else None

    @property
    def runner(self) -> StagedRunner | None:
        """The pipelined runner, once :meth:`start` or :meth:`staged` made one."""
        return self._runner

    def _computing(self) -> bool:
        return (self._thread is not None and self._thread.is_alive()) or (
            self._runner is not None and self._runner.running()
        )

    # ---------------------------------------------------------------------------------- the loop
    def _run(self, on_report: ReportCallback | None) -> None:
        log.info("pipeline started (sequential)")
        while not self._stop.is_set():
            try:
                report = self.step()
            except Exception:  # one bad frame must not stop every camera
                self.step_failures += 1
                log.exception("pipeline step failed; continuing")
                report = StepReport.idle()
            if report.frames == 0:
                self._stop.wait(self.stages.idle_sleep_s)
            elif on_report is not None:
                on_report(report)
        log.info("pipeline stopped")

    def _free_removed(self) -> None:
        for camera_id in self.cameras.take_removed():
            report_camera_dropped(self._track_listeners, camera_id)

    def step(self) -> StepReport:
        """Process the newest frame of every camera once, every phase in turn; return what was done."""
        self._free_removed()
        items = self.cameras.newest_frames()
        if not items:
            return StepReport.idle()
        return self._alert(self._action(self._track(self._detect(FrameBatch(tuple(items))))))
