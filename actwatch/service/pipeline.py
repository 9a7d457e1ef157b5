"""The compute pipeline: the one place where the stages meet, in data-flow order.

One thread runs :meth:`StreamPipeline.step` in a loop. Each step:

1. **capture** — takes the newest frame of every camera (readers keep at most 1-2; older ones were
   dropped and counted by the reader);
2. **tracker** — detects persons in all those frames in *one* batched detector call, then runs each
   camera's own ByteTrack;
3. **buffers** — samples every track at the model's fps and crops the due tracks;
4. **model** — encodes all new crops of all cameras in *one* ``encoder.onnx`` batch (each crop is
   encoded once, ever) and, for every track with ``stride`` new samples and a full window, runs
   ``head.onnx`` on the cached features, all such tracks in one batch;
5. **service** — applies the alert rules and hands events (with the frame for the snapshot and the
   window's crops as evidence) and live track boxes to the :class:`~actwatch.service.sink.EventSink`.

A failing step is logged and the loop goes on: one bad frame or camera never stops the others.

Example (the stages wired by hand, a finite file source, one step at a time — what the tests and the
benchmark do)::

    pipeline = StreamPipeline(detector=detector, runtime=runtime, buffers=buffers, alerts=alerts,
                              sink=sink, metrics=metrics, reader_factory=make_reader)
    pipeline.add_camera(CameraConfig(id="cam1", url="vtest.avi"))
    while pipeline.step().frames or not pipeline.all_ended():
        ...
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from actwatch.capture.frame import Frame
from actwatch.capture.handoff import END, DropOldestQueue
from actwatch.capture.reader import CameraReader, CameraStatus
from actwatch.capture.sources import SourceSpec
from actwatch.config import AppConfig, CameraConfig
from actwatch.errors import ActwatchError
from actwatch.service.alerts import AlertEngine
from actwatch.service.events import Event
from actwatch.service.metrics import ServiceMetrics
from actwatch.tracker.buffers import PendingSample, TrackBufferStore
from actwatch.tracker.bytetrack import CameraTracker, TrackerSettings
from actwatch.tracker.detections import Detections
from actwatch.tracker.window import TrackWindow

log = logging.getLogger(__name__)

_FPS_WINDOW_S = 5.0


class Detector(Protocol):
    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]: ...


class Runtime(Protocol):
    @property
    def classes(self) -> Sequence[str]: ...
    @property
    def supports_feature_cache(self) -> bool: ...

    def encode(self, crops: np.ndarray) -> np.ndarray: ...
    def classify(self, features: np.ndarray) -> np.ndarray: ...
    def classify_crops(self, windows: np.ndarray) -> np.ndarray: ...


class Reader(Protocol):
    """What the pipeline needs of a camera reader (:class:`CameraReader`, or a replay for tests)."""

    source: SourceSpec
    frames: DropOldestQueue[Frame]

    def start(self) -> None: ...
    def stop(self, timeout: float = ...) -> None: ...
    def status(self) -> CameraStatus: ...


class Sink(Protocol):
    def emit_event(self, event: Event, frame_bgr: np.ndarray | None, crops: np.ndarray | None) -> Any: ...
    def emit_tracks(self, camera_id: str, frame_time: float, tracks: Sequence[dict[str, Any]]) -> None: ...


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


@dataclass(slots=True, eq=False)
class _Camera:
    config: CameraConfig
    reader: Reader
    tracker: CameraTracker
    ended: bool = False
    processed_times: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=128))

    def processed_fps(self) -> float:
        """Frames per second this camera was processed at, over its last 128 processed frames."""
        times = self.processed_times
        span = times[-1] - times[0] if len(times) >= 2 else 0.0
        return (len(times) - 1) / span if span > 0 else 0.0


class StreamPipeline:
    """Cameras -> batched detection -> per-camera ByteTrack -> feature-cached windows -> alerts.

    Implements :class:`~actwatch.service.controller.CameraController` for the API. Collaborators are
    passed in (see :meth:`from_config` for the service's wiring), so tests and the benchmark run the
    same code on finite sources, one :meth:`step` at a time.
    """

    def __init__(
        self,
        *,
        detector: Detector,
        runtime: Runtime,
        buffers: TrackBufferStore,
        alerts: AlertEngine,
        sink: Sink,
        metrics: ServiceMetrics,
        reader_factory: Callable[[CameraConfig], Reader],
        tracker_factory: Callable[[str], CameraTracker] | None = None,
        stride: int = 5,
        publish_tracks: bool = True,
        idle_sleep_s: float = 0.01,
    ) -> None:
        if stride < 1:
            raise ValueError("stride must be >= 1")
        self.detector = detector
        self.runtime = runtime
        self.buffers = buffers
        self.alerts = alerts
        self.sink = sink
        self.metrics = metrics
        self._reader_factory = reader_factory
        self._tracker_factory = tracker_factory or (lambda camera_id: CameraTracker(camera_id))
        self.stride = stride
        self.publish_tracks = publish_tracks
        self._idle_sleep_s = idle_sleep_s
        self._cameras: dict[str, _Camera] = {}
        self._removed: collections.deque[str] = collections.deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Latest label of each live track, for the live overlay; freed with the track.
        self._labels: dict[tuple[str, int], tuple[str, float]] = {}
        self.step_failures = 0

    # ------------------------------------------------------------------------------------ wiring
    @classmethod
    def from_config(cls, config: AppConfig, *, sink: Sink, metrics: ServiceMetrics) -> StreamPipeline:
        """Build every stage from the configuration, in data-flow order. Heavy: loads both models.

        Raises :class:`~actwatch.errors.ActwatchError` for a missing or corrupt model or detector file.
        """
        from actwatch.assets import ensure_detector
        from actwatch.model.runtime import ActionRuntime
        from actwatch.tracker.detector import PersonDetector

        # capture: one reader per camera, created when the camera is added
        def make_reader(camera: CameraConfig) -> CameraReader:
            return CameraReader(
                camera.id, SourceSpec.parse(camera.url), config.capture, loop=camera.loop, realtime=camera.realtime
            )

        # tracker: one batched detector for all cameras, one ByteTrack per camera
        weights = config.detector.weights or ensure_detector(fetch=False)  # never download here
        detector = PersonDetector(weights, config.detector)
        tracker_settings = TrackerSettings(**config.tracker.model_dump())
        # model: encoder once per crop, head per window
        runtime = ActionRuntime(
            config.model.dir, providers=config.model.providers, intra_op_threads=config.model.intra_op_threads
        )
        buffers = TrackBufferStore(
            runtime.spec,
            max_tracks_per_camera=config.pipeline.max_tracks_per_camera,
            max_total_mb=config.pipeline.max_buffer_mb,
        )
        # service: alert rules -> sink (store + WebSocket)
        alerts = AlertEngine(config.alerts.rules, runtime.classes)
        return cls(
            detector=detector,
            runtime=runtime,
            buffers=buffers,
            alerts=alerts,
            sink=sink,
            metrics=metrics,
            reader_factory=make_reader,
            tracker_factory=lambda camera_id: CameraTracker(camera_id, settings=tracker_settings),
            stride=config.pipeline.stride,
            publish_tracks=config.pipeline.publish_tracks,
            idle_sleep_s=config.pipeline.tick_interval_s,
        )

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
        with self._lock:
            cameras = list(self._cameras.values())
        for cam in cameras:
            cam.reader.stop(timeout=2.0)

    def add_camera(self, cfg: CameraConfig) -> None:
        """Start reading ``cfg``; a bad URL raises :class:`~actwatch.errors.ActwatchError`."""
        with self._lock:
            if cfg.id in self._cameras:
                raise ActwatchError(f"camera '{cfg.id}' is already running")
        reader = self._reader_factory(cfg)
        cam = _Camera(config=cfg, reader=reader, tracker=self._tracker_factory(cfg.id))
        self.alerts.set_zone(cfg.id, cfg.zone)
        with self._lock:
            self._cameras[cfg.id] = cam
        reader.start()
        log.info("camera %s added (%s)", cfg.id, reader.source.masked)

    def update_camera(self, cfg: CameraConfig) -> None:
        """Apply a new name or zone without reconnecting."""
        with self._lock:
            cam = self._cameras.get(cfg.id)
            if cam is not None:
                cam.config = cfg
        self.alerts.set_zone(cfg.id, cfg.zone)

    def remove_camera(self, camera_id: str) -> None:
        """Stop the camera; its tracks, buffers and alert state are freed by the compute thread."""
        with self._lock:
            cam = self._cameras.pop(camera_id, None)
            self._removed.append(camera_id)
        if cam is not None:
            cam.reader.stop(timeout=2.0)
        if self._thread is None or not self._thread.is_alive():
            self._free_removed()
        log.info("camera %s removed", camera_id)

    def statuses(self) -> list[CameraStatus]:
        with self._lock:
            cameras = list(self._cameras.values())
        return [cam.reader.status() for cam in cameras]

    def ready(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    # ------------------------------------------------------------------------------------ helpers
    def camera_ids(self) -> list[str]:
        with self._lock:
            return list(self._cameras)

    def all_ended(self) -> bool:
        """Whether every camera's stream has ended (finite files only; live cameras never end)."""
        with self._lock:
            return all(cam.ended for cam in self._cameras.values())

    def processed_fps(self, camera_id: str) -> float:
        with self._lock:
            cam = self._cameras.get(camera_id)
        return cam.processed_fps() if cam is not None else 0.0

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
                self._stop.wait(self._idle_sleep_s)
        log.info("pipeline stopped")

    def _free_removed(self) -> None:
        while True:
            with self._lock:
                if not self._removed:
                    return
                camera_id = self._removed.popleft()
            self.buffers.drop_camera(camera_id)
            self.alerts.forget_camera(camera_id)
            self.metrics.remove_camera(camera_id)
            for key in [k for k in self._labels if k[0] == camera_id]:
                del self._labels[key]

    def _newest_frames(self) -> list[tuple[_Camera, Frame]]:
        with self._lock:
            cameras = list(self._cameras.values())
        out = []
        for cam in cameras:
            frames = []
            for item in cam.reader.frames.drain():
                if item is END:
                    cam.ended = True
                elif isinstance(item, Frame):
                    frames.append(item)
            if frames:
                # Only the newest frame is worth processing; the older ones count as dropped.
                self.metrics.count_skipped(cam.config.id, len(frames) - 1)
                out.append((cam, frames[-1]))
        return out

    def step(self) -> StepReport:
        """Process the newest frame of every camera once; return what was done."""
        self._free_removed()
        batch = self._newest_frames()
        if not batch:
            return StepReport.idle()
        now = time.perf_counter()

        # tracker: one batched detection call, then each camera's own ByteTrack
        t0 = time.perf_counter()
        detections = self.detector.detect([frame.image for _, frame in batch])
        t1 = time.perf_counter()
        tracked_per_camera: list[tuple[_Camera, Frame, Detections]] = []
        for (cam, frame), dets in zip(batch, detections, strict=True):
            tracked = cam.tracker.update(dets, frame.image)
            ended = cam.tracker.removed_track_ids
            if ended:
                self.buffers.end_tracks(cam.config.id, ended)
                for track_id in ended:
                    self.alerts.forget_track(cam.config.id, track_id)
                    self._labels.pop((cam.config.id, track_id), None)
            tracked_per_camera.append((cam, frame, tracked))
        t2 = time.perf_counter()

        # buffers + model: every new crop of every camera encoded once, in one batch
        pending: list[PendingSample] = []
        for _, frame, tracked in tracked_per_camera:
            pending += self.buffers.sample(frame, tracked)
        if pending:
            crops = np.stack([p.crop for p in pending])
            if self.runtime.supports_feature_cache:
                features = self.runtime.encode(crops)
            else:  # whole-clip models (R3D-18) keep only crops; a placeholder feature marks the slot
                features = np.zeros((len(pending), 1), np.float32)
            self.buffers.commit(pending, features)
        t3 = time.perf_counter()

        # model: the temporal head on every track due for classification, one batch
        windows = self.buffers.take_ready(self.stride)
        probs = self._classify(windows)
        t4 = time.perf_counter()

        # service: alert rules -> events (snapshot of the confirming frame, crops as evidence)
        frames_by_camera = {cam.config.id: frame for cam, frame, _ in tracked_per_camera}
        events: list[Event] = []
        for window, p in zip(windows, probs, strict=True):
            best = int(np.argmax(p))
            self._labels[(window.camera_id, window.track_id)] = (self.runtime.classes[best], float(p[best]))
            for event in self.alerts.update(window, p):
                confirming = frames_by_camera.get(window.camera_id)
                self.sink.emit_event(event, confirming.image if confirming is not None else None, window.crops)
                events.append(event)
        if self.publish_tracks:
            for cam, frame, tracked in tracked_per_camera:
                self.sink.emit_tracks(cam.config.id, frame.wall_time, self._track_overlay(cam.config.id, tracked))

        self.metrics.observe_stage("detect", t1 - t0)
        self.metrics.observe_stage("track", t2 - t1)
        if pending:
            self.metrics.observe_stage("encode", t3 - t2)
        if windows:
            self.metrics.observe_stage("classify", t4 - t3)
        for cam, _, tracked in tracked_per_camera:
            cam.processed_times.append(now)
            self.metrics.count_processed(cam.config.id)
            self.metrics.set_active_tracks(cam.config.id, len(tracked))
            self.metrics.set_processed_fps(cam.config.id, cam.processed_fps())
        return StepReport(
            frames=len(batch),
            detections=sum(len(d) for d in detections),
            tracks=sum(len(tracked) for _, _, tracked in tracked_per_camera),
            crops_encoded=len(pending),
            windows_classified=len(windows),
            detect_s=t1 - t0,
            track_s=t2 - t1,
            encode_s=t3 - t2,
            classify_s=t4 - t3,
            events=tuple(events),
            windows=tuple(windows),
        )

    def _classify(self, windows: list[TrackWindow]) -> np.ndarray:
        if not windows:
            return np.zeros((0, len(self.runtime.classes)), np.float32)
        if self.runtime.supports_feature_cache:
            return self.runtime.classify(np.stack([w.features for w in windows]))
        crops = [w.crops for w in windows]
        if any(c is None for c in crops):
            raise ActwatchError("a whole-clip model needs the track buffers to keep crops (keep_crops=True)")
        return self.runtime.classify_crops(np.stack([c for c in crops if c is not None]))

    def _track_overlay(self, camera_id: str, tracked: Detections) -> list[dict[str, Any]]:
        overlay = []
        for box, conf, track_id in zip(tracked.xyxy, tracked.confidence, tracked.track_id, strict=True):
            label, score = self._labels.get((camera_id, int(track_id)), (None, None))
            overlay.append(
                {
                    "track_id": int(track_id),
                    "bbox": [round(float(v), 1) for v in box],
                    "confidence": round(float(conf), 3),
                    "label": label,
                    "score": None if score is None else round(score, 3),
                }
            )
        return overlay
