"""The cameras split over compute processes (``pipeline.processes`` > 1): :class:`ShardedController`.

One Python process runs all its stages' host work (decoding hand-offs, tracking, cropping, per-track
bookkeeping, alert rules) under one interpreter lock; on a GPU that lock, not the GPU, bounds a
service's frames per second (README, the H100/H200 sweeps: one process about 230 frames/s, eight about
850). With ``pipeline.processes: N`` the service's process keeps the API, the WebSocket, the event store,
delivery and the upload jobs' queue, and N compute processes (:mod:`actwatch.service.shard_worker`, started with
``spawn``) each run a whole pipeline (capture, detector, trackers, action model, alert rules) over their
share of the cameras. A new camera goes to the process with the fewest.

- Events arrive with their evidence rendered and go through the service's one
  :class:`~actwatch.service.sink.EventSink` (stored, queued for delivery, broadcast): never dropped.
- Upload jobs run in the process with the fewest cameras, through its stages (the service's process
  loads no model); their progress comes back, and a job whose process dies fails with the reason.
- Track boxes cross only for the cameras a WebSocket client subscribes to (``SetTrackInterest``).
- Frames never cross: the one the API asks for (``latest.jpg``, MJPEG) is encoded in its compute process
  and comes as a JPEG (:class:`ShardLiveFrames`).
  Each compute process records its cameras' clips into the service's clip folder.
- Statuses, stage counters and metric families come in a report every half second.
- A compute process that dies is restarted with its cameras (backoff 1 s doubling to 30 s); meanwhile its
  cameras show ``reconnecting`` with the reason, and the other processes go on.

Each compute process's ONNX Runtime sessions get the cores divided by N as intra-op threads unless
``detector.intra_op_threads`` / ``model.intra_op_threads`` are set.

Example (where a new camera goes):
    >>> least_loaded({0: 2, 1: 1, 2: 1})
    1
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import Histogram

from actwatch.capture.reader import CameraState, CameraStatus
from actwatch.capture.sources import mask_credentials
from actwatch.errors import ActwatchError
from actwatch.service.compute_process import (
    LIVE_FRAME_TIMEOUT_S,
    START_TIMEOUT_S,
    ComputeProcess,
    ComputeProcessError,
    raise_on_error,
)
from actwatch.service.live_frames import LiveJpeg, LiveView
from actwatch.service.messages import TrackInterest
from actwatch.service.shard_figures import ComputeCollector, least_capable, merge_counters
from actwatch.service.shard_messages import (
    AddCamera,
    LiveFrameReply,
    LiveFrameRequest,
    RemoveCamera,
    RunUpload,
    SetTrackInterest,
    ShardLog,
    ShardReady,
    StartCompute,
    UpdateCamera,
)
from actwatch.service.staged import StageCounters, added_up

if TYPE_CHECKING:
    from actwatch.config import AppConfig, CameraConfig
    from actwatch.service.metrics import ServiceMetrics
    from actwatch.service.prediction_schemas import ModelInfo
    from actwatch.service.predictions import JobProgress, JobRunner, PredictionJob, PredictionOutcome
    from actwatch.service.sink import EventSink

log = logging.getLogger(__name__)

# An event's hand-off from a compute process to the service: pickled, queued, read by the receiver thread.
HANDOFF_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def least_loaded(cameras: Mapping[int, int]) -> int:
    """The compute process (index) with the fewest cameras; the lowest index on a tie."""
    return min(cameras, key=lambda i: (cameras[i], i))


def shard_config(config: AppConfig, processes: int) -> AppConfig:
    """``config`` for one of ``processes`` compute processes: unset intra-op threads become an equal
    share of the usable cores (every session would otherwise take every core, N times over), and the
    track buffers' memory cap (``pipeline.max_buffer_mb``) a share of the cap, which stays the box's.
    Its ``cameras`` are a process's share of the configured ones (the first few: only their number
    counts there), since the stages size their batches by it (the detector's and the action model's
    batch sizes, each warmed up and, on a GPU, a session each; TensorRT's profile): sized for every
    camera, each process would hold the sessions of batches it never runs. The cameras themselves come
    with ``AddCamera``.

    Example:
        >>> from actwatch.config import AppConfig
        >>> cams = [{"id": f"c{i}", "url": f"rtsp://10.0.0.{i}/s"} for i in range(10)]
        >>> cfg = shard_config(AppConfig(cameras=cams, pipeline={"processes": 4, "max_buffer_mb": 512}), 4)
        >>> cfg.pipeline.max_buffer_mb, len(cfg.cameras), cfg.detector.intra_op_threads >= 1
        (128.0, 3, True)
    """
    share = max(1, len(os.sched_getaffinity(0)) // processes)
    detector = config.detector
    if detector.intra_op_threads is None:
        detector = detector.model_copy(update={"intra_op_threads": share})
    model = config.model
    if model.intra_op_threads is None:
        model = model.model_copy(update={"intra_op_threads": share})
    pipeline = config.pipeline.model_copy(update={"max_buffer_mb": config.pipeline.max_buffer_mb / processes})
    cameras = config.cameras[: -(-len(config.cameras) // processes)]  # the largest share: ceil(K / N)
    return config.model_copy(update={"detector": detector, "model": model, "pipeline": pipeline, "cameras": cameras})


@dataclass(frozen=True, slots=True)
class ComputeProcessState:
    """One compute process as ``/system`` shows it."""

    index: int
    pid: int | None
    state: str  # running, starting, restarting
    reason: str | None  # why it is restarting
    cameras: tuple[str, ...]
    restarts: int
    providers: dict[str, list[str]]  # what its networks run on, from its last start


class ShardedController:
    """A :class:`~actwatch.service.controller.CameraController` over ``config.pipeline.processes`` compute
    processes (see the module docstring). Blocks until every process has built its stages; a process that
    cannot (a missing model, say) stops the others and raises its error."""

    def __init__(self, config: AppConfig, sink: EventSink, metrics: ServiceMetrics) -> None:
        processes = config.pipeline.processes
        self.sink = sink
        self.metrics = metrics
        self.shard_config = shard_config(config, processes)
        # spawn, not fork: the service holds threads (and on a GPU a CUDA context) a fork would copy half-made
        self.context = multiprocessing.get_context("spawn")
        self.stopping = threading.Event()
        self.started = False
        self._requests = itertools.count(1)
        self._lock = threading.Lock()
        self._providers: dict[int, dict[str, list[str]]] = {}  # each ready process's, by network
        # Track boxes cross only for cameras a WebSocket client subscribes to: the broadcaster wakes a thread
        # that tells the processes (a process sends every camera's until first told, and after a restart).
        self._interest_wake = threading.Event()
        self._interest_resend = True
        self.track_interest_sent: TrackInterest | None = None  # what the running processes were last told
        self._interest_thread = threading.Thread(
            target=self._send_track_interest, name="actwatch-track-interest", daemon=True
        )
        sink.broadcaster.add_interest_listener(self._interest_wake.set)
        self.model: ModelInfo | None = None  # the action model, from the first ready process
        # log lines seen while the processes start: each loads the same models and would say the same
        # things N times (None once all are ready: a restart's lines all show)
        self._start_up_lines: set[tuple[str, int, str]] | None = set()
        self._shards = [ComputeProcess(i, self) for i in range(processes)]
        self.live_frames = ShardLiveFrames(self)
        metrics.registry.register(ComputeCollector(self))
        self._handoff = Histogram(
            "actwatch_compute_event_handoff_seconds",
            "From a compute process sending an event to the service's process reading it (part of "
            "actwatch_frame_to_event_seconds).",
            buckets=HANDOFF_BUCKETS,
            registry=metrics.registry,
        )
        # The first process alone, then the others side by side: the first writes what the others would
        # otherwise write at once (a derived graph, a TensorRT engine cache), and a model that cannot be
        # loaded stops the start after one load, not N.
        first, *others = self._shards
        try:
            first.spawn()
            first.wait_ready(START_TIMEOUT_S)
            for shard in others:
                shard.spawn()
            for shard in others:
                shard.wait_ready(START_TIMEOUT_S)
        except BaseException:
            self.stop()
            raise
        finally:
            with self._lock:
                self._start_up_lines = None
        log.info("%d compute processes ready", processes)

    def next_request(self) -> int:
        with self._lock:
            return next(self._requests)

    def metrics_seen(self, index: int, ready: ShardReady) -> None:
        """A process is ready (at start or a restart): the service's providers for each network are
        the least capable any process runs on (:func:`least_capable`); the model is the first's (they all
        load the same files)."""
        with self._lock:
            self._providers[index] = ready.providers
            seen = list(self._providers.values())
            if self.model is None:
                self.model = ready.model
        for component in sorted({c for providers in seen for c in providers}):
            lists = [providers[component] for providers in seen if component in providers]
            chosen = least_capable(lists)
            if chosen != self.metrics.active_providers().get(component):
                if len({tuple(p) for p in lists}) > 1:
                    log.warning(
                        "the compute processes' %s runs on different providers: %s",
                        component,
                        "; ".join(f"{i}: {', '.join(p[component])}" for i, p in sorted(self._providers.items())),
                    )
                self.metrics.set_active_providers(component, chosen)
        if ready.provenance is not None and self.metrics.model_provenance() is None:
            self.metrics.set_model_provenance(ready.provenance)

    def observe_handoff(self, seconds: float) -> None:
        self._handoff.observe(max(0.0, seconds))

    def repeated_start_up_line(self, line: ShardLog) -> bool:
        """Whether, during the start, another compute process already logged ``line`` word for word
        (it is then logged once: a line that differs, a CPU fallback in one process, say, always shows)."""
        key = (line.name, line.level, line.message)
        with self._lock:
            if self._start_up_lines is None:
                return False
            if key in self._start_up_lines:
                return True
            self._start_up_lines.add(key)
            return False

    # ------------------------------------------------------------------------- track interest
    def resend_track_interest(self) -> None:
        """A process restarted (it sends every camera's boxes again): tell every process once more."""
        self._interest_resend = True
        self._interest_wake.set()

    def _send_track_interest(self) -> None:
        while True:
            self._interest_wake.wait()
            self._interest_wake.clear()
            if self.stopping.is_set():
                return
            interest = self.sink.broadcaster.track_interest()
            if interest == self.track_interest_sent and not self._interest_resend:
                continue  # a client came or went, or changed its subscription, without changing this
            self._interest_resend = False
            for shard in self._shards:
                if not shard.alive():
                    continue  # it is told when it has restarted
                try:
                    raise_on_error(shard.call(SetTrackInterest(self.next_request(), interest)))
                except Exception as exc:  # its restart resends; the others are told
                    if not self.stopping.is_set():
                        log.warning("could not tell compute process %d whose track boxes to send: %s", shard.index, exc)
            self.track_interest_sent = interest

    # ------------------------------------------------------------------------- uploads
    def upload_parts(self) -> tuple[JobRunner, ModelInfo]:
        """The upload jobs' runner (:meth:`run_upload`) and the model's description (create_app)."""
        assert self.model is not None  # set before __init__ returns: every process was ready
        return self.run_upload, self.model

    def run_upload(self, job: PredictionJob, progress: JobProgress) -> PredictionOutcome:
        """Run ``job`` in the running compute process with the fewest cameras (the service's
        :data:`~actwatch.service.predictions.JobRunner`)."""
        index = self.least_loaded_process()
        if index is None:
            raise ComputeProcessError("no compute process is running to run the job; see the service's log")
        shard = self._shards[index]
        command = RunUpload(self.next_request(), job.camera_id, job.video, job.probe, job.annotated)
        return shard.run_upload(command, progress)

    def least_loaded_process(self) -> int | None:
        """The running compute process (index) with the fewest cameras: where a new camera or the next
        upload job goes; ``None`` while none runs."""
        with self._lock:
            load = {s.index: len(s.cameras) for s in self._shards if s.down_reason is None}
        return least_loaded(load) if load else None

    # ------------------------------------------------------------------------- CameraController
    def start(self) -> None:
        for shard in self._shards:
            raise_on_error(shard.call(StartCompute(self.next_request())))
        self.started = True
        self._interest_wake.set()
        self._interest_thread.start()

    def stop(self) -> None:
        """Stop every process (side by side) and store the events they sent before stopping."""
        self.stopping.set()  # first: a process that ends now is not restarted
        self.started = False
        self._interest_wake.set()
        threads = [threading.Thread(target=s.stop, name=f"actwatch-stop-{s.index}") for s in self._shards]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def add_camera(self, cfg: CameraConfig) -> None:
        index = self.least_loaded_process()
        if index is None:
            raise ComputeProcessError("no compute process is running; see the service's log")
        shard = self._shards[index]
        raise_on_error(shard.call(AddCamera(self.next_request(), cfg)))
        with self._lock:
            shard.cameras[cfg.id] = cfg

    def update_camera(self, cfg: CameraConfig) -> None:
        shard = self._owner_of(cfg.id)
        with self._lock:
            shard.cameras[cfg.id] = cfg
        if shard.down_reason is None:  # a restarting process gets the new settings when it re-adds
            raise_on_error(shard.call(UpdateCamera(self.next_request(), cfg)))

    def remove_camera(self, camera_id: str) -> None:
        shard = self._owner_of(camera_id)
        with self._lock:
            shard.cameras.pop(camera_id, None)
        if shard.down_reason is None:
            raise_on_error(shard.call(RemoveCamera(self.next_request(), camera_id)))

    def statuses(self) -> list[CameraStatus]:
        out: list[CameraStatus] = []
        for shard in self._shards:
            with self._lock:
                cameras = dict(shard.cameras)
            reported = {s.camera_id: s for s in shard.report.statuses} if shard.report is not None else {}
            for camera_id, cfg in cameras.items():
                status = reported.get(camera_id)
                if shard.down_reason is not None or status is None:
                    state = CameraState.RECONNECTING if shard.down_reason else CameraState.CONNECTING
                    url = mask_credentials(str(cfg.url))
                    status = CameraStatus(camera_id, url, state, shard.down_reason, 0, 0, 0.0, 0, None)
                out.append(status)
        return out

    def ready(self) -> bool:
        return self.started and not self.stopping.is_set() and all(s.alive() for s in self._shards)

    def not_ready_reasons(self) -> list[str]:
        return [s.down_reason for s in self._shards if s.down_reason is not None]

    # ------------------------------------------------------------------------- figures
    def stage_counters(self) -> StageCounters | None:
        """Every process's pipelined counters together: busy seconds, drops and waits summed (a stage's
        busy-seconds rate is then the sum of the processes' occupancies), occupancy their mean."""
        counters = [s.report.counters for s in self._shards if s.report is not None and s.report.counters]
        return merge_counters(counters) if counters else None

    def metric_families(self) -> list[Any]:
        """Every process's Prometheus metric families (``ServiceMetrics.add_source`` merges them)."""
        return [family for s in self._shards if s.report is not None for family in s.report.families]

    def dropped(self) -> dict[str, int]:
        """Messages the processes dropped for a full queue (track boxes, logs, reports), summed."""
        return added_up(s.dropped() for s in self._shards)

    def received(self) -> dict[str, int]:
        """Messages read from the processes, by kind (events, tracks, reports, ...), summed."""
        return added_up(dict(s.received) for s in self._shards)

    def running(self) -> int:
        """Compute processes running with their stages built."""
        return sum(s.alive() for s in self._shards)

    def process_ids(self) -> list[int | None]:
        """Each compute process's id, in index order."""
        return [s.pid() for s in self._shards]

    def placement(self) -> dict[str, int]:
        """Which compute process (index) runs each camera."""
        with self._lock:
            return {camera_id: s.index for s in self._shards for camera_id in s.cameras}

    def process_states(self) -> list[ComputeProcessState]:
        """Each compute process: its state, cameras, restarts and providers (``/system``)."""
        out = []
        for shard in self._shards:
            with self._lock:
                cameras, providers = tuple(shard.cameras), self._providers.get(shard.index, {})
            reason = shard.down_reason
            state = "restarting" if reason is not None else "running" if shard.alive() else "starting"
            out.append(ComputeProcessState(shard.index, shard.pid(), state, reason, cameras, shard.restarts, providers))
        return out

    def restarts(self) -> int:
        return sum(s.restarts for s in self._shards)

    def latest_jpeg(self, camera_id: str, view: LiveView, known_sequence: int = 0) -> LiveJpeg | None:
        """The camera's newest frame, encoded for ``view`` by its compute process (see
        :class:`ShardLiveFrames`); ``None`` when it has none newer than ``known_sequence``, or cannot answer."""
        try:
            shard = self._owner_of(camera_id)
            reply = shard.call(
                LiveFrameRequest(self.next_request(), camera_id, view, known_sequence), LIVE_FRAME_TIMEOUT_S
            )
        except ActwatchError:
            return None
        return reply.frame if isinstance(reply, LiveFrameReply) else None

    def _owner_of(self, camera_id: str) -> ComputeProcess:
        with self._lock:
            for shard in self._shards:
                if camera_id in shard.cameras:
                    return shard
        raise ActwatchError(f"camera '{camera_id}' is not running")


class ShardLiveFrames:
    """The API's :class:`~actwatch.service.live_frames.LiveFrameSource` over compute processes: a frame is
    encoded where it lives, in its camera's compute process, and only the JPEG crosses (a raw frame is
    1.3 MB at 768x576, 6 MB at 1080p; its JPEG a few tens of kB)."""

    def __init__(self, controller: ShardedController) -> None:
        self._controller = controller

    def latest_jpeg(self, camera_id: str, view: LiveView, known_sequence: int = 0) -> LiveJpeg | None:
        return self._controller.latest_jpeg(camera_id, view, known_sequence)

    def forget(self, camera_id: str) -> None:
        """Nothing is kept here: the compute process forgot the camera's frame when it stopped it."""
