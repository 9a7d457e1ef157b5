"""``actwatch bench``: the streaming pipeline on K copies of vtest.avi, with the naive method side by side.

The clip is replayed frame by frame as fast as the pipeline goes (no pacing, no drops) through the same
:class:`~actwatch.service.pipeline.StreamPipeline` the service runs, its stages built by the service's
own wiring (:func:`~actwatch.service.stages.build_stages`) from an :class:`~actwatch.config.AppConfig`
made for the run (:func:`bench_app_config`), with the real detector, real ONNX graphs and a real event
store. On the same steps, the naive method of simple pipelines — every stride,
each classified track's whole ``seq_len``-crop window re-encoded by the whole model (``model.onnx``) —
is timed on exactly the windows ours classified, so the ratio compares like with like in one run.

Example:
    >>> cfg = BenchConfig(cameras=2, frames=60, imgsz=320)
    >>> cfg.stride
    1
"""

from __future__ import annotations

import json
import resource
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from actwatch.errors import ActwatchError

if TYPE_CHECKING:
    from actwatch.config import AppConfig


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
    model_dir: Path | None = None
    video: Path | None = None
    detector: Path | None = None
    providers: list[str] | None = None
    device: str | None = None  # None: the best available providers, as the service (detector.device: auto)
    memory_sample_s: float = 5.0


@dataclass
class BenchResult:
    """Figures of one run (all times in milliseconds unless named otherwise)."""

    config: dict[str, Any]
    providers: list[str]
    steps: int
    frames: int
    wall_s: float
    fps_end_to_end: float
    mean_tracks_per_step: float
    mean_tracks_per_camera_frame: float
    stage_ms_per_step: dict[str, float]
    crops_encoded: int
    windows_classified: int
    events: int
    latency_ms_p50: float | None
    latency_ms_p95: float | None
    ours_action_ms_measured: float
    naive_action_ms_measured: float
    naive_over_ours: float | None
    action_share_of_detect_track: float
    peak_rss_mb: float
    rss_samples_mb: list[tuple[float, float]] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str)

    def table(self) -> str:
        rss = self.rss_samples_mb
        lines = [
            f"actwatch bench: {self.config['cameras']} x vtest.avi, {self.frames} frames in {self.wall_s:.1f} s, "
            f"providers {', '.join(self.providers)}",
            "",
            "| figure | value |",
            "| --- | --- |",
            f"| end-to-end frames/s (all cameras) | {self.fps_end_to_end:.2f} |",
            f"| active tracks per step (per camera frame) | {self.mean_tracks_per_step:.1f} "
            f"({self.mean_tracks_per_camera_frame:.1f}) |",
        ]
        for stage, ms in self.stage_ms_per_step.items():
            lines.append(f"| {stage} ms/step | {ms:.1f} |")
        lines += [
            f"| crops encoded / windows classified | {self.crops_encoded} / {self.windows_classified} |",
            f"| events | {self.events} |",
            f"| frame-to-event latency p50 / p95 ms | {_fmt(self.latency_ms_p50)} / {_fmt(self.latency_ms_p95)} |",
            f"| action recognition, ours (encode+head) ms, measured steps | {self.ours_action_ms_measured:.1f} |",
            f"| action recognition, naive (model.onnx on whole windows) ms | {self.naive_action_ms_measured:.1f} |",
            f"| naive / ours | {_fmt(self.naive_over_ours, '.1f')} |",
            f"| action recognition / (detection+tracking) | {100 * self.action_share_of_detect_track:.1f}% |",
            f"| peak RSS MB | {self.peak_rss_mb:.0f} |",
        ]
        if len(rss) >= 2:
            lines.append(
                f"| RSS first / last sample MB ({rss[-1][0]:.0f} s apart) | {rss[0][1]:.0f} / {rss[-1][1]:.0f} |"
            )
        return "\n".join(lines)


def _fmt(value: float | None, spec: str = ".0f") -> str:
    return "n/a" if value is None else format(value, spec)


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory of process ``pid`` (default: this one) in MiB, from ``/proc``; 0.0 where unreadable."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def bench_app_config(
    cfg: BenchConfig, *, work: Path, video: Path, weights: Path, model_dir: Path, alert_label: str
) -> AppConfig:
    """The service configuration the benchmark runs: ``cfg.cameras`` copies of ``video``, no overlays,
    one alert rule that fires easily (so storing and publishing events is part of what is measured)."""
    from actwatch.config import AppConfig
    from actwatch.demo_model import low_bar_rule, offline_detector_section
    from actwatch.settings import validate_settings

    video = Path(video).resolve()
    return validate_settings(
        AppConfig,
        {
            "data_dir": str(work),
            "sources": {"file_dirs": [str(video.parent)]},  # the benchmark's own clip, nothing else
            "cameras": [{"id": f"cam{i}", "url": str(video), "loop": cfg.loop} for i in range(cfg.cameras)],
            "detector": offline_detector_section(weights, cfg.imgsz, cfg.device),
            "model": {"dir": str(model_dir), "providers": cfg.providers},
            "pipeline": {"stride": cfg.stride, "publish_tracks": False},
            "alerts": {"rules": [low_bar_rule(alert_label, cooldown_s=5.0, min_track_age_s=0)]},
        },
        "actwatch bench",
    )


def run_benchmark(cfg: BenchConfig, progress: bool = False) -> BenchResult:
    """Run the benchmark described by ``cfg`` and return its figures."""
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
    from actwatch.service.stages import Detector, build_stages
    from actwatch.service.store import EventStore
    from actwatch.tracker.detector import PersonDetector

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

        def warmed_up(detector: Detector) -> Detector:
            if isinstance(detector, PersonDetector):
                detector.warmup(batch=cfg.cameras, shape=(576, 768))
            return detector

        providers: list[str] = []

        def split_model_only(runtime: RecognitionRuntime) -> RecognitionRuntime:
            if isinstance(runtime, ActionRuntime):
                providers.extend(runtime.providers)
            if not runtime.supports_feature_cache:
                raise ActwatchError("the benchmark compares feature caching with the naive path: use a split model")
            return runtime

        metrics = ServiceMetrics()
        store = EventStore(config.database_url, config.media_dir, config.storage.retention_days)
        stages = build_stages(
            config,
            sink=EventSink(store, Broadcaster(), metrics),
            metrics=metrics,
            reader_factory=lambda camera: readers[camera.id],
            wrap_detector=warmed_up,
            wrap_runtime=split_model_only,
        )
        runtime = stages.runtime
        pipeline = StreamPipeline(stages)
        for camera in config.cameras:
            pipeline.add_camera(camera)

        totals = dict.fromkeys(("detect", "track", "encode", "classify"), 0.0)
        steps = frames = tracks = crops = windows = events = 0
        latencies: list[float] = []
        ours_measured = naive_measured = 0.0
        classified_steps = 0
        rss: list[tuple[float, float]] = []
        start = time.perf_counter()
        next_sample = start
        while True:
            fed = [reader.feed() for reader in readers.values()]
            if not any(fed):
                break
            report = pipeline.step()
            done = time.time()
            steps += 1
            frames += report.frames
            tracks += report.tracks
            crops += report.crops_encoded
            windows += report.windows_classified
            events += len(report.events)
            latencies += [done - e.frame_time for e in report.events]
            for stage in totals:
                totals[stage] += getattr(report, f"{stage}_s")
            if report.windows:
                classified_steps += 1
                if cfg.naive and classified_steps % cfg.naive_every == 0:
                    crops_windows = np.stack([w.crops for w in report.windows if w.crops is not None])
                    t0 = time.perf_counter()
                    runtime.classify_crops(crops_windows)
                    naive_measured += time.perf_counter() - t0
                    ours_measured += report.encode_s + report.classify_s
            now = time.perf_counter()
            if now >= next_sample:
                rss.append((now - start, rss_mb()))
                next_sample = now + cfg.memory_sample_s
            if progress and steps % 50 == 0:
                print(
                    f"  step {steps}: {frames / (now - start):.2f} frames/s, {report.tracks} tracks",
                    flush=True,
                )
            if cfg.duration_s is not None and now - start >= cfg.duration_s:
                break
        wall = time.perf_counter() - start
        rss.append((wall, rss_mb()))
        pipeline.stop()
        store.close()

    detect_track = totals["detect"] + totals["track"]
    action = totals["encode"] + totals["classify"]
    lat_ms = np.asarray(latencies) * 1000.0
    return BenchResult(
        config={k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        providers=providers,
        steps=steps,
        frames=frames,
        wall_s=wall,
        fps_end_to_end=frames / wall if wall > 0 else 0.0,
        mean_tracks_per_step=tracks / max(steps, 1),
        mean_tracks_per_camera_frame=tracks / max(frames, 1),
        stage_ms_per_step={k: 1000.0 * v / max(steps, 1) for k, v in totals.items()},
        crops_encoded=crops,
        windows_classified=windows,
        events=events,
        latency_ms_p50=float(np.percentile(lat_ms, 50)) if len(lat_ms) else None,
        latency_ms_p95=float(np.percentile(lat_ms, 95)) if len(lat_ms) else None,
        ours_action_ms_measured=1000.0 * ours_measured,
        naive_action_ms_measured=1000.0 * naive_measured,
        naive_over_ours=naive_measured / ours_measured if ours_measured > 0 else None,
        action_share_of_detect_track=action / detect_track if detect_track > 0 else 0.0,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        rss_samples_mb=rss,
    )
