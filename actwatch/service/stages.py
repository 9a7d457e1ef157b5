"""The one place where the stages are built from the configuration, in data-flow order.

:func:`build_stages` returns a frozen :class:`Stages`; :class:`~actwatch.service.pipeline.StreamPipeline`
runs them. ``serve`` and ``demo`` (through :func:`~actwatch.service.app.create_app`), ``actwatch bench``
and the pipeline tests all build their stages here, so what the benchmark measures is what the service
runs. The replaceable parts are arguments: the sink and metrics, a reader factory (replays of a file
for tests and the benchmark) and wrappers around the detector and the runtime (recorders in tests).

Example (a finite file replayed one frame per step, as the tests and the benchmark do)::

    stages = build_stages(config, sink=sink, metrics=metrics, reader_factory=lambda cam: replays[cam.id])
    pipeline = StreamPipeline(stages)
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar, runtime_checkable

import numpy as np

from actwatch.config import AppConfig, CameraConfig
from actwatch.errors import ConfigError
from actwatch.model.runtime import ActionRuntime, RecognitionRuntime
from actwatch.onnx_providers import gpu_devices, runs_on_gpu, select_providers, set_gpu_wait
from actwatch.service.alerts import AlertEngine
from actwatch.service.camera_set import Reader, ReaderFactory
from actwatch.service.events import AlertRecord, FrameOverlay
from actwatch.service.metrics import ServiceMetrics
from actwatch.signals.stage import SignalStage
from actwatch.tracker.buffers import TrackBufferStore
from actwatch.tracker.bytetrack import CameraTracker, TrackerSettings
from actwatch.tracker.detections import Detections

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from actwatch.tracker.detector import PersonDetector


class Detector(Protocol):
    """Detects persons in a batch of images (:class:`~actwatch.tracker.detector.PersonDetector`)."""

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]: ...


class Sink(Protocol):
    """Where the pipeline sends alerts and live overlays (:class:`~actwatch.service.sink.EventSink`)."""

    def emit_event(self, alert: AlertRecord) -> object: ...
    def emit_tracks(self, overlay: FrameOverlay, image: np.ndarray | None = None) -> None: ...


@runtime_checkable
class EvidenceRenderer(Protocol):
    """A sink that can render an alert's evidence ahead of storing it, in another thread (the event
    writer's render threads): ``render_evidence`` returns the record with ``snapshot_jpeg``/``crops_png``
    set and the arrays dropped."""

    def render_evidence(self, alert: AlertRecord) -> AlertRecord: ...


log = logging.getLogger(__name__)

TrackerFactory = Callable[[str, float], CameraTracker]
"""Makes camera ``camera_id``'s tracker for a source of ``frame_rate`` frames per second."""

T = TypeVar("T")


def _unchanged(part: T) -> T:
    return part


@dataclass(frozen=True, slots=True)
class Stages:
    """Every stage of the pipeline, in data-flow order, and the compute loop's settings."""

    # capture: one reader per camera, made when the camera is added
    reader_factory: ReaderFactory
    # tracker: one batched detector for the cameras' frames, one ByteTrack per camera
    detector: Detector
    tracker_factory: TrackerFactory
    # buffers + model: encoder once per crop, head per window
    buffers: TrackBufferStore
    runtime: RecognitionRuntime
    # service: alert rules -> sink (store + WebSocket), metrics
    alerts: AlertEngine
    sink: Sink
    metrics: ServiceMetrics
    # signals: fallen / loitering / running of every tracked person, under the signal labels' rules
    signals: SignalStage | None = None
    stride: int = 5
    publish_tracks: bool = True
    idle_sleep_s: float = 0.01
    # per camera beside its tracker: scene cuts end its tracks; static tracks are shown, never classified
    tracker: TrackerSettings = field(default_factory=TrackerSettings)
    # how the phases run (see actwatch.service.staged): pipelined threads or the one sequential loop
    runtime_mode: Literal["pipelined", "sequential"] = "pipelined"
    queue_size: int = 1
    max_frame_age_s: float | None = 2.0
    max_pending_evidence: int = 32
    evidence_workers: int = 2
    track_workers: int = 1
    detect_batch: int | None = None  # frames per detector call, pipelined (None: every camera's newest)
    detect_niceness: int = 0  # OS niceness of the detect phase's thread, pipelined (actwatch.priority)
    detect_workers: int = 1  # detect threads side by side, pipelined (actwatch.service.staged)
    frame_wait_s: float = 0.0  # the intake waits this long at most for a camera's frame due soon, pipelined


def camera_reader_factory(config: AppConfig) -> ReaderFactory:
    """The service's readers: a :class:`~actwatch.capture.reader.CameraReader` per camera."""
    from actwatch.capture.reader import CameraReader
    from actwatch.capture.sources import SourceSpec

    def make_reader(camera: CameraConfig) -> Reader:
        # the camera's own capture settings where it has them: e.g. NVDEC for the H.264 streams, the CPU for
        # MJPEG; a lower frame-rate cap for one busy camera
        overrides = {name: getattr(camera, name) for name in ("hwaccel", "max_fps")}
        capture = config.capture.model_copy(update={k: v for k, v in overrides.items() if v is not None})
        return CameraReader(
            camera.id, SourceSpec.parse(camera.url), capture, loop=camera.loop, realtime=camera.realtime
        )

    return make_reader


def _person_detector(
    config: AppConfig, metrics: ServiceMetrics, *, selected: list[str], workers: int
) -> PersonDetector:
    """The detector of ``config`` on the providers ``selected`` for it; ``workers``: the pipelined runtime's
    detect threads, which share the cores."""
    from actwatch.assets import ensure_detector
    from actwatch.tracker.detector import PersonDetector

    settings = config.detector
    if settings.max_batch is None:  # TensorRT's batch profile sized to the cameras (one frame each per call),
        # with room for cameras added through the API: the next power of two, at least 8
        settings = settings.model_copy(update={"max_batch": max(8, 1 << (len(config.cameras) - 1).bit_length())})
    weights = settings.weights
    # Never download at start-up: a missing detector is an error that says to run `actwatch assets`.
    # An unset device is resolved by the detector itself (the best available). Pipelined, the detector's
    # threads (its session's and the detect phase's) run at a lower priority than the later phases.
    pipelined = config.pipeline.runtime == "pipelined"
    niceness = detect_niceness(config.pipeline.detect_niceness, selected) if pipelined else 0
    if workers > 1 and settings.intra_op_threads is None:  # the workers share the cores instead of each taking all
        settings = settings.model_copy(update={"intra_op_threads": max(1, (os.cpu_count() or 1) // workers)})
    detector = PersonDetector(
        weights if weights is not None else ensure_detector(fetch=False),
        settings,
        providers=selected,
        niceness=niceness,
        batch_frames=len(config.cameras) or None,  # one frame per camera: fixed padding's one call size
    )
    metrics.set_active_providers("detector", detector.providers)
    return detector


def action_max_batch(setting: int | None, cameras: int) -> int:
    """Crops per action-model call (``model.max_batch``); unset: 8 per camera, a power of two, 32 to 256.

    On a GPU the warm-up runs the model at every padded size up to this, and ONNX Runtime's arena keeps
    the largest: sized for 256 crops, one process held 3.8 GB of an H100 at one camera, and 16 processes
    did not fit the card. More crops than this in a step (a crowd, cameras added through the API) are split
    into calls of this size: slower, never a size the warm-up missed.

    Example:
        >>> [action_max_batch(None, k) for k in (0, 1, 4, 8, 16, 64)], action_max_batch(48, 64)
        ([32, 32, 32, 64, 128, 256], 48)
    """
    if setting is not None:
        return setting
    return min(256, max(32, 1 << (8 * cameras - 1).bit_length()))


def capture_below_sampling(config: AppConfig, sample_fps: float) -> list[str]:
    """The ``max_fps`` settings (``capture:`` and the cameras') below the model's sampling rate.

    Example:
        >>> config = AppConfig.model_validate(
        ...     {"capture": {"max_fps": 5}, "cameras": [{"id": "gate", "url": "rtsp://h/s", "max_fps": 12}]}
        ... )
        >>> capture_below_sampling(config, 10.0)
        ['capture.max_fps (5)']
    """
    rates = [("capture.max_fps", config.capture.max_fps)]
    rates += [(f"cameras[{camera.id}].max_fps", camera.max_fps) for camera in config.cameras]
    return [f"{name} ({rate:g})" for name, rate in rates if rate is not None and rate < sample_fps]


def detect_batch(setting: int | Literal["auto"], providers: Sequence[str]) -> int | None:
    """Frames per detector call (``pipeline.detect_batch``); ``None``: every camera's newest frame.

    ``auto`` is 1 where the detector runs on the CPU: there a batch of 2 took 126 ms per frame against
    133 for single frames (this project's 2-core Xeon), while every frame in it waited for the whole batch.

    Example:
        >>> detect_batch("auto", ["CPUExecutionProvider"]), detect_batch("auto", ["CUDAExecutionProvider"])
        (1, None)
        >>> detect_batch(4, ["CPUExecutionProvider"])
        4
    """
    return _resolve_auto(setting, providers, on_cpu=1, on_gpu=None)


def detect_workers(setting: int | Literal["auto"], providers: Sequence[str]) -> int:
    """Detect threads of the pipelined runtime (``pipeline.detect_workers``); ``auto`` is 1.

    Example:
        >>> detect_workers("auto", ["CPUExecutionProvider"]), detect_workers(2, ["CPUExecutionProvider"])
        (1, 2)
    """
    return _resolve_auto(setting, providers, on_cpu=1, on_gpu=1)


CPU_DETECT_NICENESS = 10


def detect_niceness(setting: int | Literal["auto"], providers: Sequence[str]) -> int:
    """The pipelined detector's niceness (``pipeline.detect_niceness``): ``auto`` is
    :data:`CPU_DETECT_NICENESS` where the detector runs on the CPU and 0 on a GPU.

    Example:
        >>> detect_niceness("auto", ["CPUExecutionProvider"]), detect_niceness("auto", ["CUDAExecutionProvider"])
        (10, 0)
        >>> detect_niceness(3, ["CUDAExecutionProvider"])
        3
    """
    return _resolve_auto(setting, providers, on_cpu=CPU_DETECT_NICENESS, on_gpu=0)


CPU_FRAME_WAIT_MS = 30


def frame_wait_ms(setting: int | Literal["auto"], providers: Sequence[str]) -> int:
    """How long the pipelined intake waits at most for a camera's next frame when it is due that soon
    (``pipeline.frame_wait_ms``): ``auto`` is :data:`CPU_FRAME_WAIT_MS` where the detector runs on the CPU
    and 0 on a GPU.

    Example:
        >>> frame_wait_ms("auto", ["CPUExecutionProvider"]), frame_wait_ms("auto", ["CUDAExecutionProvider"])
        (30, 0)
        >>> frame_wait_ms(0, ["CPUExecutionProvider"])
        0
    """
    return _resolve_auto(setting, providers, on_cpu=CPU_FRAME_WAIT_MS, on_gpu=0)


A = TypeVar("A")


def _resolve_auto(setting: int | Literal["auto"], providers: Sequence[str], *, on_cpu: A, on_gpu: A) -> int | A:
    """``setting``, or for ``auto`` the value for where the detector runs: ``on_gpu`` when its first
    provider is CUDA or TensorRT, ``on_cpu`` otherwise (OpenVINO included), as for ``detector.rect`` and
    ``batch_padding`` (:func:`~actwatch.onnx_providers.runs_on_gpu`, the one test of it).

    Example:
        >>> [detect_batch("auto", [p]) for p in ("OpenVINOExecutionProvider", "CUDAExecutionProvider:1")]
        [1, None]
    """
    if setting != "auto":
        return setting
    return on_gpu if runs_on_gpu(providers) else on_cpu


# How ONNX Runtime words a device allocation that failed (its arena, or CUDA itself), lower-cased
OUT_OF_MEMORY = ("failed to allocate memory", "out of memory")


def _warm(call: Callable[[], object], what: str, advice: str) -> None:
    """``call``; a device that runs out of memory becomes an error that says which setting to change."""
    try:
        call()
    except Exception as exc:  # onnxruntime's own exception types
        text = str(exc).strip()
        if not any(marker in text.lower() for marker in OUT_OF_MEMORY):
            raise
        reason = next((line for line in text.splitlines() if line.strip()), type(exc).__name__)[:300]
        raise ConfigError(f"{what} ran out of device memory at start ({reason}); {advice}") from exc


def warm_up(detector: Detector, runtime: RecognitionRuntime, *, cameras: int = 1) -> dict[str, float]:
    """One inference of each network on blank input, before the first frame; seconds each took (logged).

    ONNX Runtime prepares kernels (and a GPU provider allocates memory) at the first run of each input
    shape; without this the first real frame pays for it. The detector sees a batch of ``cameras`` images,
    the pipeline's batch; the action model every batch size its calls can have
    (:meth:`~actwatch.model.runtime.ActionRuntime.call_batch_sizes`: one on the CPU, each padded size on a
    GPU, where a first-seen size stalled a step). Every padded size has its own session on CUDA, so this
    is where a card too small for them runs out of memory: a :class:`ConfigError` then says which setting
    to change, before the first frame rather than during a run.

    Example (stand-ins that count their calls):
        >>> from actwatch.model.config import InputSpec
        >>> class Counting:
        ...     spec, supports_feature_cache, calls = InputSpec(seq_len=4, input_size=(32, 32)), True, []
        ...     def detect(self, images): self.calls.append(("detect", len(images))); return []
        ...     def encode(self, crops): self.calls.append(("encode", len(crops))); return np.zeros((len(crops), 8))
        ...     def classify(self, features): self.calls.append(("classify", features.shape)); return np.zeros((1, 2))
        >>> part = Counting()
        >>> sorted(warm_up(part, part, cameras=2)), part.calls
        (['detector', 'model'], [('detect', 2), ('encode', 1), ('classify', (1, 4, 8))])
    """
    from actwatch.tracker.detector import PersonDetector

    seconds: dict[str, float] = {}
    start = time.perf_counter()
    batches = detector.call_batch_sizes(cameras) if isinstance(detector, PersonDetector) else [max(1, cameras)]
    for size in batches:
        _warm(
            functools.partial(detector.detect, [np.zeros((480, 640, 3), np.uint8)] * size),
            f"the person detector, preparing calls of {size} frames,",
            "set detector.batch_padding: fixed (one session instead of one per batch size), or run fewer "
            "cameras per service",
        )
    seconds["detector"] = time.perf_counter() - start
    sizes = runtime.call_batch_sizes() if isinstance(runtime, ActionRuntime) and runtime.supports_feature_cache else [1]
    start = time.perf_counter()
    for size in sizes:
        _warm(
            functools.partial(_warm_model, runtime, size),
            f"the action model, preparing calls of {size} crops,",
            "set model.batch_padding: fixed (one encoder session instead of one per batch size) or a smaller "
            "model.max_batch",
        )
    seconds["model"] = time.perf_counter() - start
    log.info("warmed up the detector in %.2f s and the action model in %.2f s", seconds["detector"], seconds["model"])
    return seconds


def _warm_model(runtime: RecognitionRuntime, size: int) -> None:
    spec = runtime.spec
    crops = np.zeros((size, spec.input_size[0], spec.input_size[1], 3), np.uint8)
    if runtime.supports_feature_cache:
        features = np.asarray(runtime.encode(crops), np.float32)
        runtime.classify(np.repeat(features[:, None, :], spec.seq_len, axis=1))
    else:
        runtime.classify_crops(np.repeat(crops[:, None], spec.seq_len, axis=1))


def build_stages(
    config: AppConfig,
    *,
    sink: Sink,
    metrics: ServiceMetrics,
    reader_factory: ReaderFactory | None = None,
    wrap_detector: Callable[[Detector], Detector] = _unchanged,
    wrap_runtime: Callable[[RecognitionRuntime], RecognitionRuntime] = _unchanged,
) -> Stages:
    """Build every stage from ``config``, in data-flow order. Heavy: loads the detector and the model.

    ``reader_factory`` replaces the service's camera readers (replays); ``wrap_detector`` and
    ``wrap_runtime`` receive the built detector and runtime, already warmed up (:func:`warm_up`: one
    inference each, so the first frame pays no set-up), and return what the pipeline uses (the same
    object or a recorder around it).

    Raises :class:`~actwatch.errors.ActwatchError` for a missing or corrupt model or detector file, and
    :class:`~actwatch.errors.ConfigError` for an alert rule naming neither a class the model has nor a
    behaviour signal, a label that names both, or a ``fallen`` rule with a detector that has no such class.
    """
    from actwatch.model.provenance import manifest_provenance
    from actwatch.signals.behaviour import fallen_class_ids
    from actwatch.signals.stage import split_rules

    # capture
    readers = reader_factory or camera_reader_factory(config)
    detector_providers = select_providers(config.detector.device)  # probed once: the providers' notes logged once
    # how threads wait for the GPU: set on the devices before the first session makes their context
    if config.pipeline.gpu_wait != "auto":
        devices = gpu_devices(detector_providers, select_providers(config.model.providers))
        applied, what = set_gpu_wait(config.pipeline.gpu_wait, devices)
        log.log(logging.INFO if applied else logging.WARNING, "pipeline.gpu_wait: %s", what)
    # tracker
    pipelined = config.pipeline.runtime == "pipelined"
    workers = detect_workers(config.pipeline.detect_workers, detector_providers) if pipelined else 1
    person_detector = _person_detector(config, metrics, selected=detector_providers, workers=workers)
    tracker_settings = config.tracker

    def make_tracker(camera_id: str, frame_rate: float) -> CameraTracker:
        return CameraTracker(camera_id, frame_rate=frame_rate, settings=tracker_settings)

    # model
    model = config.model
    action_runtime = ActionRuntime(
        model.dir,
        providers=model.providers,
        intra_op_threads=model.intra_op_threads,
        preprocess=model.preprocess,
        max_batch=action_max_batch(model.max_batch, len(config.cameras)),
        padding=model.batch_padding,
    )
    metrics.set_active_providers("model", action_runtime.providers)
    provenance = manifest_provenance(action_runtime.manifest)
    metrics.set_model_provenance(provenance)
    if provenance.untrained:
        log.warning("action model %s is %s", model.dir, provenance.describe())
    else:
        log.info("action model %s: %s", model.dir, provenance.describe())
    for setting in capture_below_sampling(config, action_runtime.spec.fps):
        log.warning(
            "%s is below the action model's sampling rate (%g fps): its windows span more time than the model "
            "was trained on; raise it to at least %g",
            setting,
            action_runtime.spec.fps,
            action_runtime.spec.fps,
        )
    batch = detect_batch(config.pipeline.detect_batch, person_detector.providers)
    in_one_call = batch if batch is not None and config.pipeline.runtime == "pipelined" else len(config.cameras)
    warm_up(person_detector, action_runtime, cameras=min(len(config.cameras), in_one_call))
    detector = wrap_detector(person_detector)
    runtime = wrap_runtime(action_runtime)
    buffers = TrackBufferStore(
        runtime.spec,
        max_tracks_per_camera=config.pipeline.max_tracks_per_camera,
        max_total_mb=config.pipeline.max_buffer_mb,
        mb_per_camera=config.pipeline.buffer_mb_per_camera,
        max_gap_s=config.pipeline.window_gap_s,
    )
    # signals + service: the rules of the signal labels go to the signals phase, the others to the model's
    model_rules, signal_rules = split_rules(config.alerts.rules, runtime.classes, config.signals.labels())
    fallen = fallen_class_ids(config.signals, person_detector.class_names)
    if not fallen and any(rule.label == config.signals.fallen.label for rule in signal_rules):
        raise ConfigError(
            f"alert rule '{config.signals.fallen.label}': the detector has no class for a fallen person (its "
            f"classes: {person_detector.class_names}); set signals.fallen.class_names or class_ids, or use the "
            "default detector (classes Normal and Fall)"
        )
    signals = SignalStage(config.signals, fallen, signal_rules)
    alerts = AlertEngine(model_rules, runtime.classes)
    return Stages(
        reader_factory=readers,
        detector=detector,
        tracker_factory=make_tracker,
        tracker=tracker_settings,
        buffers=buffers,
        runtime=runtime,
        alerts=alerts,
        sink=sink,
        metrics=metrics,
        signals=signals,
        stride=config.pipeline.stride,
        publish_tracks=config.pipeline.publish_tracks,
        idle_sleep_s=config.pipeline.tick_interval_s,
        runtime_mode=config.pipeline.runtime,
        queue_size=config.pipeline.queue_size,
        max_frame_age_s=config.pipeline.max_frame_age_s,
        max_pending_evidence=config.pipeline.max_pending_evidence,
        evidence_workers=config.pipeline.evidence_workers,
        track_workers=config.pipeline.track_workers,
        detect_batch=batch,
        detect_niceness=person_detector.niceness,
        detect_workers=workers,
        frame_wait_s=frame_wait_ms(config.pipeline.frame_wait_ms, person_detector.providers) / 1000,
    )
