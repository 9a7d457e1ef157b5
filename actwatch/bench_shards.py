"""``actwatch bench --processes N``: the cameras split over N processes, each running its own pipeline.

One Python process runs every stage's host work (tracking, cropping, per-track bookkeeping, the
alert rules, the event store) under one interpreter lock; on a GPU that lock, not the GPU, bounds the
frames per second (README, the H100 sweep). N processes, each with its own pipeline, detector and
action model on the same device, are what a box runs as N services (each with its share of the
cameras, their events gathered by the fleet hub). This measures that ceiling before the service shards
itself: the shards start together (a barrier after every shard has built and warmed up its stages),
and their figures are pooled into one :class:`~actwatch.bench_report.BenchResult`:

- frames and events are summed, and frames/s are over the wall time from the first shard's start to
  the last one's end;
- frame-to-event percentiles are those of every shard's events together;
- stage milliseconds are per step of each shard (a step is that shard's frames), averaged over the
  steps; occupancy is each stage's mean over the shards; drops are summed;
- CPU is the shards' sum (200% = two cores), RSS the sum of their peaks; the GPU figures are the
  device's, from nvidia-smi (memory: the largest sample; utilisation: the shards' mean).

Each shard's ONNX Runtime sessions get the usable cores divided by P as intra-op threads (unless
``intra_op_threads`` is given): by default every session takes every core, and P processes would ask
for P times the machine.

Example (how 10 cameras are split over 4 processes):
    >>> shard_sizes(10, 4)
    [3, 3, 2, 2]
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.process
import queue as queue_module
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from actwatch.bench_report import BenchResult, percentile, usable_cores
from actwatch.errors import ActwatchError
from actwatch.service.staged import added_up
from actwatch.thread_cpu import summed

if TYPE_CHECKING:
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Barrier

    from actwatch.bench import BenchConfig

# How long a shard waits for the others to be ready (build, export, warm-up, replayed detections).
READY_TIMEOUT_S = 900.0


def shard_sizes(cameras: int, processes: int) -> list[int]:
    """How many of ``cameras`` each of ``processes`` runs (the first ones take one more when uneven)."""
    if processes < 1 or processes > cameras:
        raise ActwatchError(
            f"--processes {processes} needs between 1 and as many processes as cameras ({cameras}); "
            "give fewer processes or more cameras"
        )
    return [cameras // processes + (i < cameras % processes) for i in range(processes)]


@dataclass(frozen=True, slots=True)
class ShardOutcome:
    """One shard's figures and when its run started (epoch seconds, at the barrier)."""

    index: int
    result: BenchResult
    started_at: float


@dataclass(frozen=True, slots=True)
class ShardFailure:
    """A shard that could not run, and why; ``stopped``: it stopped because another shard failed."""

    index: int
    message: str
    stopped: bool = False


def run_sharded(cfg: BenchConfig, progress: bool = False) -> BenchResult:
    """Run ``cfg`` with its cameras split over ``cfg.processes`` processes; return the pooled figures."""
    import tempfile

    from actwatch.demo_model import export_untrained_model
    from actwatch.model.config import InputSpec

    sizes = shard_sizes(cfg.cameras, cfg.processes)
    if cfg.intra_op_threads is None:
        # ONNX Runtime gives each session every core; P processes would ask for P times the cores
        cfg = replace(cfg, intra_op_threads=max(1, usable_cores() // len(sizes)))
    with tempfile.TemporaryDirectory(prefix="actwatch-shards-") as tmp:
        if cfg.model_dir is None:  # one export for every shard
            spec = InputSpec(seq_len=cfg.seq_len, input_size=cfg.input_size, fps=10.0)
            cfg = replace(cfg, model_dir=export_untrained_model(Path(tmp) / "model", spec))
        # spawn, not fork: the parent may hold threads and a GPU context a fork would copy half-made
        context = multiprocessing.get_context("spawn")
        barrier = context.Barrier(len(sizes))
        results: Queue[ShardOutcome | ShardFailure] = context.Queue()
        shards = [
            context.Process(
                target=_shard_main,
                args=(i, replace(cfg, cameras=k, processes=1), barrier, results),
                name=f"actwatch-bench-shard-{i}",
                daemon=True,
            )
            for i, k in enumerate(sizes)
        ]
        if progress:
            print(f"  {cfg.cameras} camera(s) over {len(shards)} processes: {sizes}", flush=True)
        for shard in shards:
            shard.start()
        try:
            outcomes = _collect(shards, results, barrier)
        finally:
            for shard in shards:
                shard.join(timeout=30)
                if shard.is_alive():
                    shard.kill()
    return merge_shards(cfg, outcomes)


def _shard_main(index: int, cfg: BenchConfig, barrier: Barrier, results: Queue[ShardOutcome | ShardFailure]) -> None:
    from actwatch.bench import run_benchmark

    started: list[float] = []

    def ready() -> None:
        barrier.wait(READY_TIMEOUT_S)
        started.append(time.time())

    try:
        result = run_benchmark(cfg, on_ready=ready)
    except threading.BrokenBarrierError:
        results.put(ShardFailure(index, "stopped: another shard failed before the run", stopped=True))
    except Exception as exc:  # reported to the parent, which says which shard failed and why
        barrier.abort()  # the others stop waiting for this one
        results.put(ShardFailure(index, f"{type(exc).__name__}: {exc}"))
    else:
        results.put(ShardOutcome(index, result, started[0]))


def _collect(
    shards: Sequence[multiprocessing.process.BaseProcess],
    results: Queue[ShardOutcome | ShardFailure],
    barrier: Barrier,
) -> list[ShardOutcome]:
    """Every shard's outcome; a shard that failed or died fails the run, naming it (the one that failed
    first, not those it stopped)."""
    outcomes: dict[int, ShardOutcome] = {}
    stopped: dict[int, ShardFailure] = {}
    while len(outcomes) + len(stopped) < len(shards):
        try:
            got = results.get(timeout=1.0)
        except queue_module.Empty:
            done = outcomes.keys() | stopped.keys()
            dead = [i for i, s in enumerate(shards) if not s.is_alive() and i not in done]
            if dead:
                time.sleep(1.0)  # a result put just before the exit may still be in the pipe
                if results.empty():
                    barrier.abort()
                    codes = ", ".join(f"{i} (exit code {shards[i].exitcode})" for i in dead)
                    raise ActwatchError(f"bench shard(s) {codes} ended without figures") from None
            continue
        if isinstance(got, ShardFailure):
            barrier.abort()
            if not got.stopped:
                raise ActwatchError(f"bench shard {got.index} failed: {got.message}")
            stopped[got.index] = got
        else:
            outcomes[got.index] = got
    if stopped:
        raise ActwatchError(f"bench shards {sorted(stopped)} stopped before the run: another shard failed")
    return [outcomes[i] for i in sorted(outcomes)]


def merge_shards(cfg: BenchConfig, outcomes: list[ShardOutcome]) -> BenchResult:
    """One result for the whole run from each shard's (see the module docstring for how each figure pools).

    Example (two shards of one camera, 10 frames each in 1 s, starting 0.5 s apart):
        >>> from actwatch.bench import BenchConfig
        >>> def shard(i, start, detect_ms):
        ...     figures = dict(steps=10, frames_in=10, frames=10, wall_s=1.0, fps_in=10.0, fps_end_to_end=10.0,
        ...                    mean_tracks_per_step=2.0, mean_tracks_per_camera_frame=2.0,
        ...                    stage_ms_per_step={"detect": detect_ms}, occupancy={"detect": 0.5}, drops={"stale": 1},
        ...                    crops_encoded=20, windows_classified=5, events=2, latency_ms_p50=100.0,
        ...                    latency_ms_p95=300.0, ours_action_ms_measured=1.0, naive_action_ms_measured=3.0,
        ...                    naive_over_ours=3.0, action_share_of_detect_track=0.5, cpu_percent=90.0,
        ...                    peak_rss_mb=500.0, latencies_ms=[100.0, 300.0])
        ...     return ShardOutcome(i, BenchResult({}, "pipelined", "max", "cpu", ["CPU"], **figures), start)
        >>> r = merge_shards(BenchConfig(cameras=2, processes=2), [shard(0, 0.0, 10.0), shard(1, 0.5, 30.0)])
        >>> r.frames, round(r.fps_end_to_end, 2), r.stage_ms_per_step, r.drops, r.latency_ms_p50, r.processes
        (20, 13.33, {'detect': 20.0}, {'stale': 2}, 200.0, 2)
    """
    if not outcomes:
        raise ActwatchError("a sharded bench run needs at least one shard's figures")
    results = [o.result for o in outcomes]
    first = min(o.started_at for o in outcomes)
    wall = max(o.started_at + o.result.wall_s for o in outcomes) - first
    steps = sum(r.steps for r in results)
    frames = sum(r.frames for r in results)
    frames_in = sum(r.frames_in for r in results)
    tracks = sum(r.mean_tracks_per_step * r.steps for r in results)
    stages = list(dict.fromkeys(k for r in results for k in r.stage_ms_per_step))  # in the shards' order
    stage_ms = {k: sum(r.stage_ms_per_step.get(k, 0.0) * r.steps for r in results) / max(steps, 1) for k in stages}
    occupancy = {k: float(np.mean([r.occupancy.get(k, 0.0) for r in results])) for k in results[0].occupancy}
    latencies = [ms for r in results for ms in r.latencies_ms]
    ours = sum(r.ours_action_ms_measured for r in results)
    naive = sum(r.naive_action_ms_measured for r in results)
    detect_track = sum(
        (r.stage_ms_per_step.get("detect", 0) + r.stage_ms_per_step.get("track", 0)) * r.steps for r in results
    )
    action = sum(
        (r.stage_ms_per_step.get("encode", 0) + r.stage_ms_per_step.get("classify", 0)) * r.steps for r in results
    )
    gpu_mem = [r.gpu_mem_mib_max for r in results if r.gpu_mem_mib_max is not None]
    gpu_util = [r.gpu_util_mean for r in results if r.gpu_util_mean is not None]
    return BenchResult(
        config=cfg.as_dict(),
        runtime=cfg.runtime,
        rate=cfg.rate,
        cpu_name=results[0].cpu_name,
        providers=results[0].providers,
        steps=steps,
        frames_in=frames_in,
        frames=frames,
        wall_s=wall,
        fps_in=frames_in / wall if wall > 0 else 0.0,
        fps_end_to_end=frames / wall if wall > 0 else 0.0,
        mean_tracks_per_step=tracks / max(steps, 1),
        mean_tracks_per_camera_frame=tracks / max(frames, 1),
        stage_ms_per_step=stage_ms,
        occupancy=occupancy,
        drops=added_up(r.drops for r in results),
        crops_encoded=sum(r.crops_encoded for r in results),
        windows_classified=sum(r.windows_classified for r in results),
        events=sum(r.events for r in results),
        latency_ms_p50=percentile(latencies, 50),
        latency_ms_p95=percentile(latencies, 95),
        ours_action_ms_measured=ours,
        naive_action_ms_measured=naive,
        naive_over_ours=naive / ours if ours > 0 and naive > 0 else None,
        action_share_of_detect_track=action / detect_track if detect_track > 0 else 0.0,
        cpu_percent=sum(r.cpu_percent for r in results),
        cpu_s_by_thread=summed(r.cpu_s_by_thread for r in results),
        peak_rss_mb=sum(r.peak_rss_mb for r in results),
        gpu_name=results[0].gpu_name,
        gpu_mem_mib_max=max(gpu_mem) if gpu_mem else None,
        gpu_util_mean=float(np.mean(gpu_util)) if gpu_util else None,
        processes=len(results),
        latencies_ms=latencies,
    )
