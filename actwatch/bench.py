"""``actwatch bench``: the streaming pipeline on K copies of vtest.avi, with the naive method side by side.

Each of the K cameras replays the clip (decoded like a file camera of the service, looping if asked),
either as fast as the pipeline takes frames (``rate="max"``: a camera's next frame is decoded when the
detector is free for it, no drops) or at the clip's own frame rate (``rate="native"``: like live
cameras; frames the pipeline cannot keep up with are dropped and counted). The runtime is the service's
pipelined one or, with ``runtime="sequential"``, the one-thread loop it replaced; :func:`run_sweep`
runs several camera counts and both runtimes in one run, for one table. The frames go through the same
:class:`~actwatch.service.pipeline.StreamPipeline` the service runs, its stages built by the service's
own wiring (:func:`~actwatch.service.stages.build_stages`) from an :class:`~actwatch.config.AppConfig`
made for the run (:func:`bench_app_config`), with the real detector, real ONNX graphs and a real event
store. The naive method of simple pipelines (each classified track's whole window re-encoded by
``model.onnx``) is timed on exactly the windows ours classified: like with like, in one run.

Example:
    >>> cfg = BenchConfig(cameras=2, frames=60, imgsz=320)
    >>> cfg.stride
    1
"""

from __future__ import annotations

import dataclasses
import itertools
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from actwatch.bench_report import BenchResult, ResourceSampler, cpu_name, percentile, rss_mb, sweep_table
from actwatch.errors import ActwatchError
from actwatch.onnx_choices import BatchPadding, GpuWait, Preprocess

if TYPE_CHECKING:
    from actwatch.capture.replay import ReplayReader
    from actwatch.config import AppConfig
    from actwatch.service.events import AlertRecord, FrameOverlay
    from actwatch.service.phases import StepReport
    from actwatch.service.pipeline import StreamPipeline
    from actwatch.service.sink import EventSink
    from actwatch.service.staged import StageCounters
    from actwatch.service.stages import Detector

__all__ = ["BenchConfig", "BenchResult", "bench_app_config", "rss_mb", "run_benchmark", "run_sweep", "sweep_table"]

Runtime = Literal["pipelined", "sequential"]


@dataclass(frozen=True)
class BenchConfig:
    """What to run; the defaults are the issue's setting (stride 1, 30-crop windows at 10 fps)."""

    cameras: int = 2
    frames: int = 200  # per camera; with loop=True the clip restarts until this many frames
    loop: bool = False
    duration_s: float | None = None  # stop after this many seconds (memory soak) if set
    imgsz: int = 640
    stride: int = 1
    seq_len: int = 30
    input_size: tuple[int, int] = (112, 112)
    naive: bool = True
    naive_every: int = 1  # time the naive method on every n-th step that classified something
    naive_max_windows: int = 256  # windows (with their crops) kept to time the naive method on after the run
    model_dir: Path | None = None
    video: Path | None = None
    detector: Path | None = None
    providers: list[str] | None = None
    device: str | None = None  # None: the best available providers, as the service (detector.device: auto)
    memory_sample_s: float = 5.0
    runtime: Runtime = "pipelined"
    rate: Literal["max", "native"] = "max"
    preprocess: Preprocess = "auto"  # detector.preprocess and model.preprocess
    replay_detections: bool = False  # ReplayedDetector: measure everything but the detector
    detect_batch: int | None = None  # pipeline.detect_batch (None: auto)
    frame_wait_ms: int | None = None  # pipeline.frame_wait_ms (None: auto)
    detect_niceness: int | None = None  # pipeline.detect_niceness (None: auto)
    detect_workers: int | None = None  # pipeline.detect_workers (None: auto)
    # > 1: the cameras split over that many processes, each its own pipeline (actwatch.bench_shards)
    processes: int = 1
    intra_op_threads: int | None = None  # detector.intra_op_threads and model.intra_op_threads (None: ORT's)
    gpu_wait: GpuWait = "auto"  # pipeline.gpu_wait
    rect: bool | None = None  # detector.rect: each camera's aspect at imgsz instead of a square (None: auto)
    batch_padding: BatchPadding = "auto"  # model.batch_padding and detector.batch_padding

    def as_dict(self) -> dict[str, object]:
        """The settings as a result reports them (paths as strings)."""
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


def bench_app_config(
    cfg: BenchConfig, *, work: Path, video: Path, weights: Path, model_dir: Path, alert_label: str
) -> AppConfig:
    """The service configuration the benchmark runs: ``cfg.cameras`` copies of ``video``, no overlays,
    one alert rule that fires easily (so storing and publishing events is part of what is measured)."""
    from actwatch.config import AppConfig, ServerConfig
    from actwatch.demo_model import low_bar_rule, offline_detector_section
    from actwatch.settings import validate_settings

    video = Path(video).resolve()
    # the pipeline's scheduling settings the run was given; None: the service's auto
    scheduling = dict(
        detect_batch=cfg.detect_batch,
        frame_wait_ms=cfg.frame_wait_ms,
        detect_niceness=cfg.detect_niceness,
        detect_workers=cfg.detect_workers,
    )
    return validate_settings(
        AppConfig,
        {
            "data_dir": str(work),
            # the sweep may go past the service's default camera limit
            "server": {"max_cameras": max(ServerConfig().max_cameras, cfg.cameras)},
            "sources": {"file_dirs": [str(video.parent)]},  # the benchmark's own clip, nothing else
            "cameras": [{"id": f"cam{i}", "url": str(video), "loop": cfg.loop} for i in range(cfg.cameras)],
            "detector": offline_detector_section(weights, cfg.imgsz, cfg.device)
            | {
                "preprocess": cfg.preprocess,
                "intra_op_threads": cfg.intra_op_threads,
                "rect": "auto" if cfg.rect is None else cfg.rect,
                "batch_padding": cfg.batch_padding,
            },
            "model": {
                "dir": str(model_dir),
                "providers": cfg.providers,
                "preprocess": cfg.preprocess,
                "intra_op_threads": cfg.intra_op_threads,
                "batch_padding": cfg.batch_padding,
            },
            "pipeline": {
                "stride": cfg.stride,
                "publish_tracks": False,
                "runtime": cfg.runtime,
                "gpu_wait": cfg.gpu_wait,
            }
            | {name: "auto" if value is None else value for name, value in scheduling.items()},
            "alerts": {"rules": [low_bar_rule(alert_label, cooldown_s=5.0, min_track_age_s=0)]},
        },
        "actwatch bench",
    )


class _LatencySink:
    """Times each event from its frame's capture to the moment the sink has stored and broadcast it."""

    def __init__(self, sink: EventSink) -> None:
        self._sink = sink
        self.latencies_s: list[float] = []
        self.stored_at: dict[str, float] = {}  # event id -> when it was stored and broadcast

    def emit_event(self, alert: AlertRecord) -> object:
        out = self._sink.emit_event(alert)
        now = time.time()
        self.latencies_s.append(now - alert.event.frame_time)
        self.stored_at[alert.event.id] = now
        return out

    def emit_tracks(self, overlay: FrameOverlay, image: np.ndarray | None = None) -> None:
        self._sink.emit_tracks(overlay, image)

    def render_evidence(self, alert: AlertRecord) -> AlertRecord:
        return self._sink.render_evidence(alert)


def run_sweep(
    cfg: BenchConfig, cameras: list[int], runtimes: list[Runtime], progress: bool = False
) -> list[BenchResult]:
    """:func:`run_benchmark` for every camera count and runtime, alternating runtimes per count; the
    generated model (when ``cfg.model_dir`` is unset) is exported once for all runs."""
    from actwatch.demo_model import export_untrained_model
    from actwatch.model.config import InputSpec

    results = []
    with tempfile.TemporaryDirectory(prefix="actwatch-sweep-") as tmp:
        if cfg.model_dir is None:
            spec = InputSpec(seq_len=cfg.seq_len, input_size=cfg.input_size, fps=10.0)
            cfg = replace(cfg, model_dir=export_untrained_model(Path(tmp) / "model", spec))
        for k in cameras:
            for runtime in runtimes:
                if progress:
                    print(f"  {k} camera(s), {runtime} ...", flush=True)
                results.append(run_benchmark(replace(cfg, cameras=k, runtime=runtime), progress=False))
    return results


def run_benchmark(
    cfg: BenchConfig, progress: bool = False, *, on_ready: Callable[[], None] | None = None
) -> BenchResult:
    """Run the benchmark described by ``cfg`` and return its figures; ``on_ready`` is called once the
    stages are built and warmed up, just before the first frame (the shards of a sharded run meet there).
    With ``cfg.processes`` > 1 the cameras are split over that many processes
    (:func:`actwatch.bench_shards.run_sharded`)."""
    if cfg.processes > 1:
        from actwatch.bench_shards import run_sharded

        return run_sharded(cfg, progress=progress)
    from actwatch.assets import default_cache_dir, ensure_detector, ensure_sample_video
    from actwatch.capture.replay import ReplayReader
    from actwatch.demo_model import export_untrained_model
    from actwatch.model.config import InputSpec
    from actwatch.model.manifest import load_manifest
    from actwatch.model.runtime import ActionRuntime, RecognitionRuntime
    from actwatch.service.broadcast import Broadcaster
    from actwatch.service.metrics import ServiceMetrics
    from actwatch.service.pipeline import StreamPipeline
    from actwatch.service.sink import EventSink
    from actwatch.service.stages import build_stages
    from actwatch.service.store import EventStore

    if cfg.cameras < 1 or cfg.frames < 1:
        raise ActwatchError("bench needs at least one camera and one frame")
    cache = default_cache_dir()
    video = cfg.video or ensure_sample_video(cache)
    if not Path(video).is_file():
        raise ActwatchError(f"video {video} not found; give an existing file with --video")
    weights = cfg.detector or ensure_detector(cache)
    with tempfile.TemporaryDirectory(prefix="actwatch-bench-") as tmp:
        work = Path(tmp)
        spec = InputSpec(seq_len=cfg.seq_len, input_size=cfg.input_size, fps=10.0)
        model_dir = cfg.model_dir or export_untrained_model(work / "model", spec)
        classes = load_manifest(model_dir).classes
        config = bench_app_config(
            cfg, work=work, video=video, weights=weights, model_dir=model_dir, alert_label=classes[0]
        )
        readers = {
            camera.id: ReplayReader(camera.id, camera.url, max_frames=cfg.frames, loop=camera.loop)
            for camera in config.cameras
        }

        def replayed_if_asked(detector: Detector) -> Detector:
            # (build_stages has warmed it up at the batch sizes the run's pipeline uses)
            if not cfg.replay_detections:
                return detector
            from actwatch.bench_replay import ReplayedDetector

            return ReplayedDetector(detector, Path(video), cfg.frames)

        providers: list[str] = []

        def split_model_only(runtime: RecognitionRuntime) -> RecognitionRuntime:
            if isinstance(runtime, ActionRuntime):
                providers.extend(runtime.providers)
            if not runtime.supports_feature_cache:
                raise ActwatchError("the benchmark compares feature caching with the naive path: use a split model")
            return runtime

        metrics = ServiceMetrics()
        store = EventStore(config.database_url, config.media_dir, config.storage.retention_days)
        sink = _LatencySink(EventSink(store, Broadcaster(), metrics))
        stages = build_stages(
            config,
            sink=sink,
            metrics=metrics,
            reader_factory=lambda camera: readers[camera.id],
            wrap_detector=replayed_if_asked,
            wrap_runtime=split_model_only,
        )
        pipeline = StreamPipeline(stages)
        for camera in config.cameras:
            pipeline.add_camera(camera)
        run = _Run(cfg, pipeline, list(readers.values()), progress)
        if on_ready is not None:
            on_ready()
        run.go()
        store.close()

    return run.result(providers, sink.latencies_s, sink.stored_at)


LATENCY_PARTS = ("to detector", "detector", "tracking", "action model", "alert and store")


def latency_parts(reports: Sequence[StepReport], stored_at: dict[str, float]) -> dict[str, dict[str, float]]:
    """Where each event's frame-to-event time went: from the frame's capture to the detector, then each
    stage up to the next one's start (its queue included), then from the alert phase to the stored and
    broadcast event; p50, p95 and mean ms of each part over the events (the parts add up to each
    event's latency).

    Example (one event: captured at 10.0 s, detected from 10.05, tracked from 10.2, ... stored at 10.4):
        >>> from actwatch.service.events import Event
        >>> from actwatch.service.phases import StepReport
        >>> from actwatch.service.step_timing import StageTimes
        >>> event = Event("cam1", 1, "fall", 0.9, 9.0, 10.0, (0, 0, 1, 1), id="ev1")
        >>> report = StepReport(1, 1, 1, 1, 1, 0.1, 0.0, 0.0, 0.0, events=(event,),
        ...                     began=StageTimes(10.05, 10.2, 10.25, 10.3))
        >>> {k: round(v["p50"]) for k, v in latency_parts([report], {"ev1": 10.4}).items()}
        {'to detector': 50, 'detector': 150, 'tracking': 50, 'action model': 50, 'alert and store': 100}
    """
    parts: dict[str, list[float]] = {name: [] for name in LATENCY_PARTS}
    for report in reports:
        b = report.began
        if b.detect is None or b.track is None or b.action is None or b.alert is None:
            continue
        for event in report.events:
            stored = stored_at.get(event.id)
            if stored is None:
                continue
            marks = (event.frame_time, b.detect, b.track, b.action, b.alert, stored)
            for name, (begin, end) in zip(LATENCY_PARTS, itertools.pairwise(marks), strict=True):
                parts[name].append(1000.0 * (end - begin))
    return {
        name: {"p50": percentile(ms, 50) or 0.0, "p95": percentile(ms, 95) or 0.0, "mean": float(np.mean(ms))}
        for name, ms in parts.items()
        if ms
    }


class _Run:
    """One run's loop and its sums; the pipeline's reports may come from another thread (pipelined)."""

    def __init__(self, cfg: BenchConfig, pipeline: StreamPipeline, readers: list[ReplayReader], progress: bool) -> None:
        self.cfg = cfg
        self.pipeline = pipeline
        self.readers = readers
        self.progress = progress
        self.reports: list[StepReport] = []
        self.kept: list[StepReport] = []  # reports whose windows the naive method is timed on
        self.kept_windows = 0
        self.naive_s = self.ours_s = 0.0
        self.classified_steps = 0
        self.frames_in = 0
        self.sampler = ResourceSampler(interval_s=min(cfg.memory_sample_s, 0.5))
        self.wall = self.cpu = 0.0
        self.counters: dict[str, float] = {}
        self.drops: dict[str, int] = {}

    def on_report(self, report: StepReport) -> None:
        # The windows (with their crops) are kept only for the steps the naive method is timed on: kept
        # for every step, they would be the benchmark's own memory in the RSS it reports.
        self.reports.append(dataclasses.replace(report, windows=()))
        if report.windows:
            self.classified_steps += 1
            # The naive method is timed after the run, for both runtimes: timed between steps it would
            # count in the sequential loop's wall time (and not in the pipelined one's).
            due = self.cfg.naive and self.classified_steps % self.cfg.naive_every == 0
            if due and self.kept_windows < self.cfg.naive_max_windows:
                self.kept.append(report)
                self.kept_windows += len(report.windows)

    def _time_naive(self, report: StepReport) -> None:
        crops_windows = np.stack([w.crops for w in report.windows if w.crops is not None])
        t0 = time.perf_counter()
        self.pipeline.runtime.classify_crops(crops_windows)
        self.naive_s += time.perf_counter() - t0
        self.ours_s += report.encode_s + report.classify_s

    def _feed(self, readers: list[ReplayReader] | None = None) -> bool:
        fed = [reader.feed() for reader in (self.readers if readers is None else readers)]
        self.frames_in += sum(fed)
        return any(fed)

    def _over(self, start: float) -> bool:
        return self.cfg.duration_s is not None and time.perf_counter() - start >= self.cfg.duration_s

    def go(self) -> None:
        cfg, pipeline = self.cfg, self.pipeline
        self.sampler.start()
        start = time.perf_counter()
        if cfg.rate == "native":
            self._native(start)
        elif cfg.runtime == "sequential":
            while self._feed():
                self.on_report(pipeline.step())
                self._tick(start)
                if self._over(start):
                    break
            pipeline.step()  # the END sentinels
        else:
            runner = pipeline.staged(lossless=True, on_report=self.on_report)
            # The cameras take turns, ``detect_batch`` at a time (the service's intake does the same), and
            # a camera's next frame is decoded just before its turn, so no frame waits for another's.
            batch = runner.detect_batch or len(self.readers)
            live = list(self.readers)
            while live and runner.wait_for_detector():
                turn, live = live[:batch], live[batch:]
                live += [reader for reader in turn if self._feed([reader])]
                runner.submit(batch)
                self._tick(start)
                if self._over(start):
                    break
            runner.submit()
            runner.flush()
            self._stage_counters(runner.counters())
            self.sampler.sample_threads()  # the stage threads end in stop(): their CPU time is read first
            runner.stop()
        self.sampler.sample_threads()
        pipeline.stop()
        self.wall, self.cpu = self.sampler.stop()
        for report in self.kept:
            self._time_naive(report)
        if cfg.runtime == "sequential":
            self._sequential_counters()
        self.drops["reader"] = sum(r.frames.dropped for r in self.readers)
        evicted = pipeline.buffers.evicted  # windows lost to the buffers' bounds, not tracks that ended
        self.drops |= {
            "windows evicted (memory)": evicted["memory"],
            "windows evicted (track cap)": evicted["track_cap"],
        }

    def _native(self, start: float) -> None:
        """Feed every camera at the clip's frame rate, as live cameras deliver, whatever the pipeline does."""
        pipeline = self.pipeline
        pipeline.start(on_report=self.on_report)
        interval = 1.0 / (self.readers[0].frame_rate or 10.0)
        next_at = time.perf_counter()
        while self._feed():
            self._tick(start)
            if self._over(start):
                break
            next_at += interval
            time.sleep(max(0.0, next_at - time.perf_counter()))
        while not pipeline.all_ended():  # the pipeline takes the END sentinels, then drains on stop()
            time.sleep(0.01)
        runner = pipeline.runner
        if runner is not None:
            self.sampler.sample_threads()  # before its stage threads end
            runner.stop()  # drains every stage and the writer before the counters are read
            self._stage_counters(runner.counters())

    def _stage_counters(self, counters: StageCounters) -> None:
        # the intake's waits for frames due soon, as a share of the wall time (pipelined.frame_wait_ms)
        self.counters = counters.occupancy | {"wait": counters.frame_waited_s / max(counters.wall_s, 1e-9)}
        self.drops = {f"queue {k}": v for k, v in counters.drops.items()}
        self.drops |= {"stale": counters.stale, "evidence": counters.evidence_dropped}

    def _sequential_counters(self) -> None:
        total = {
            "detect": sum(r.detect_s for r in self.reports),
            "track": sum(r.track_s for r in self.reports),
            "action": sum(r.encode_s + r.classify_s for r in self.reports),
            "alert": sum(r.emit_s for r in self.reports),
        }
        self.counters = {k: v / self.wall if self.wall > 0 else 0.0 for k, v in total.items()}

    def _tick(self, start: float) -> None:
        if self.progress and self.frames_in % (50 * len(self.readers)) == 0:
            now = time.perf_counter()
            done = sum(r.frames for r in list(self.reports))
            print(f"  {self.frames_in} frames in, {done / (now - start):.2f} frames/s processed", flush=True)

    def result(self, providers: list[str], latencies_s: list[float], stored_at: dict[str, float]) -> BenchResult:
        reports, cfg, wall = self.reports, self.cfg, self.wall
        steps = len(reports)
        frames = sum(r.frames for r in reports)
        tracks = sum(r.tracks for r in reports)
        totals = {
            stage: sum(getattr(r, f"{stage}_s") for r in reports)
            for stage in ("detect", "track", "encode", "classify", "emit")
        }
        detect_track = totals["detect"] + totals["track"]
        action = totals["encode"] + totals["classify"]
        lat_ms = [1000.0 * s for s in latencies_s]
        sampler = self.sampler
        return BenchResult(
            config=cfg.as_dict(),
            runtime=cfg.runtime,
            rate=cfg.rate,
            cpu_name=cpu_name(),
            providers=providers,
            steps=steps,
            frames_in=self.frames_in,
            frames=frames,
            wall_s=wall,
            fps_in=self.frames_in / wall if wall > 0 else 0.0,
            fps_end_to_end=frames / wall if wall > 0 else 0.0,
            mean_tracks_per_step=tracks / max(steps, 1),
            mean_tracks_per_camera_frame=tracks / max(frames, 1),
            stage_ms_per_step={k: 1000.0 * v / max(steps, 1) for k, v in totals.items()},
            occupancy=self.counters,
            drops=self.drops,
            crops_encoded=sum(r.crops_encoded for r in reports),
            windows_classified=sum(r.windows_classified for r in reports),
            events=len(latencies_s),
            latency_ms_p50=percentile(lat_ms, 50),
            latency_ms_p95=percentile(lat_ms, 95),
            latency_parts_ms=latency_parts(reports, stored_at),
            ours_action_ms_measured=1000.0 * self.ours_s,
            naive_action_ms_measured=1000.0 * self.naive_s,
            naive_over_ours=self.naive_s / self.ours_s if self.ours_s > 0 else None,
            action_share_of_detect_track=action / detect_track if detect_track > 0 else 0.0,
            cpu_percent=100.0 * self.cpu / wall if wall > 0 else 0.0,
            cpu_s_by_thread=sampler.threads.by_group(self.cpu),
            peak_rss_mb=max((mb for _, mb in sampler.rss), default=rss_mb()),
            gpu_name=sampler.gpu_name,
            gpu_mem_mib_max=max(sampler.gpu_mem_mib) if sampler.gpu_mem_mib else None,
            gpu_util_mean=float(np.mean(sampler.gpu_util)) if sampler.gpu_util else None,
            rss_samples_mb=sampler.rss[:: max(1, int(cfg.memory_sample_s / sampler.interval_s))],
            latencies_ms=lat_ms,
        )
