"""What ``actwatch bench`` measures besides the pipeline's own reports, and how it prints the figures.

:class:`BenchResult` holds one run (one camera count, one runtime); :func:`sweep_table` prints several
runs as one table. :class:`ResourceSampler` samples this process's CPU time (in all and per thread:
:mod:`actwatch.thread_cpu`) and resident memory and, where ``nvidia-smi`` exists, the GPU's memory and
utilisation, while a run goes on.

Example:
    >>> percentile([], 95) is None, percentile([1.0, 2.0, 3.0], 50)
    (True, 2.0)
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from actwatch.thread_cpu import ThreadCpu


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


def percentile(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile of ``values``; ``None`` for no values."""
    return float(np.percentile(np.asarray(values), q)) if values else None


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class ResourceSampler:
    """Samples RSS and each thread's CPU time every ``interval_s`` (and the GPU through ``nvidia-smi`` where
    it is installed)."""

    def __init__(self, interval_s: float = 0.5, gpu: bool = True) -> None:
        self.interval_s = interval_s
        self.rss: list[tuple[float, float]] = []
        self.gpu_mem_mib: list[float] = []
        self.gpu_util: list[float] = []
        self.gpu_name: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="actwatch-bench-sampler", daemon=True)
        self._smi: subprocess.Popen[str] | None = None
        self._smi_thread: threading.Thread | None = None
        self._use_gpu = gpu and shutil.which("nvidia-smi") is not None
        self._start = self._cpu0 = 0.0
        self.threads = ThreadCpu()

    def start(self) -> None:
        self.threads.start()
        self._start, self._cpu0 = time.perf_counter(), _cpu_seconds()
        self._thread.start()
        if self._use_gpu:
            query = "name,memory.used,utilization.gpu"
            ms = str(max(100, int(self.interval_s * 1000)))
            cmd = ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader,nounits", "-i", "0", "-lms", ms]
            try:
                self._smi = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            except OSError:
                self._smi = None
            else:
                self._smi_thread = threading.Thread(target=self._read_smi, daemon=True)
                self._smi_thread.start()

    def sample_threads(self) -> None:
        """Read the threads' CPU time now: call it just before the measured threads end, so that what they
        spent since the last sample is counted as theirs."""
        self.threads.sample()

    def stop(self) -> tuple[float, float]:
        """Stop sampling; return (wall seconds, CPU seconds of this process) since :meth:`start`."""
        wall, cpu = time.perf_counter() - self._start, _cpu_seconds() - self._cpu0
        self._stop.set()
        self._thread.join()
        self.rss.append((wall, rss_mb()))
        if self._smi is not None:
            self._smi.terminate()
            self._smi.wait(5)
        if self._smi_thread is not None:
            self._smi_thread.join(5)
        return wall, cpu

    def _run(self) -> None:
        while not self._stop.is_set():
            self.rss.append((time.perf_counter() - self._start, rss_mb()))
            self.threads.sample()
            self._stop.wait(self.interval_s)

    def _read_smi(self) -> None:
        assert self._smi is not None and self._smi.stdout is not None
        for line in self._smi.stdout:
            parts = [p.strip() for p in line.split(",")]
            if len(parts) != 3:
                continue
            try:
                mem, util = float(parts[1]), float(parts[2])
            except ValueError:
                continue
            self.gpu_name = parts[0]
            self.gpu_mem_mib.append(mem)
            self.gpu_util.append(util)


@dataclass
class BenchResult:
    """Figures of one run (all times in milliseconds unless named otherwise).

    ``occupancy``: busy seconds / wall seconds of each stage (pipelined: each thread; sequential: each
    phase of the one loop; ``wait``: the pipelined intake's waits for frames due soon); ``drops``: frames
    and work dropped, by where (reader queues, stage queues, stale frames, evidence of events written
    without it); ``cpu_percent``: this process's CPU time over the wall time (200% = two cores busy);
    ``cpu_s_by_thread``: that CPU time in seconds per thread group (:mod:`actwatch.thread_cpu`: each stage's
    thread, ``main`` (the benchmark's feeder, which decodes the clips), the native threads of ONNX Runtime
    and the codecs), summed over the processes of a sharded run.
    """

    config: dict[str, Any]
    runtime: str
    rate: str
    cpu_name: str
    providers: list[str]
    steps: int
    frames_in: int
    frames: int
    wall_s: float
    fps_in: float
    fps_end_to_end: float
    mean_tracks_per_step: float
    mean_tracks_per_camera_frame: float
    stage_ms_per_step: dict[str, float]
    occupancy: dict[str, float]
    drops: dict[str, int]
    crops_encoded: int
    windows_classified: int
    events: int
    latency_ms_p50: float | None
    latency_ms_p95: float | None
    ours_action_ms_measured: float
    naive_action_ms_measured: float
    naive_over_ours: float | None
    action_share_of_detect_track: float
    cpu_percent: float
    peak_rss_mb: float
    gpu_name: str | None = None
    gpu_mem_mib_max: float | None = None
    gpu_util_mean: float | None = None
    rss_samples_mb: list[tuple[float, float]] = field(default_factory=list)
    cpu_s_by_thread: dict[str, float] = field(default_factory=dict)
    # where the frame-to-event time went, per part (actwatch.bench.latency_parts): {part: {p50, p95, mean}}
    latency_parts_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    processes: int = 1  # the processes the cameras were split over (each its own pipeline)
    # every event's frame-to-event time (ms): what the processes of a sharded run pool their percentiles
    # from; not printed (the percentiles are)
    latencies_ms: list[float] = field(default_factory=list, repr=False)

    @property
    def cpu_ms_per_frame(self) -> float:
        """This run's CPU time (all its processes) per processed frame, in milliseconds."""
        return 1000.0 * self.cpu_percent / 100.0 * self.wall_s / max(self.frames, 1)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        del out["latencies_ms"]
        out["cpu_ms_per_frame"] = self.cpu_ms_per_frame
        return out

    @classmethod
    def from_dict(cls, figures: dict[str, Any]) -> BenchResult:
        """The result :meth:`to_dict` (``--json``) gave, its derived figures left out."""
        return cls(**{k: v for k, v in figures.items() if k != "cpu_ms_per_frame"})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    def table(self) -> str:
        rss = self.rss_samples_mb
        sharded = self.processes > 1
        cpu_of = "all processes" if sharded else "this process"
        rss_of = " (the sum of the processes' peaks)" if sharded else ""
        lines = [
            f"actwatch bench: {self.config['cameras']} x vtest.avi, {self.runtime}"
            + (f" in {self.processes} processes" if self.processes > 1 else "")
            + f", rate {self.rate}, "
            f"{self.frames} of {self.frames_in} frames processed in {self.wall_s:.1f} s, "
            f"providers {', '.join(self.providers)}, CPU {self.cpu_name}"
            + (f", GPU {self.gpu_name}" if self.gpu_name else ""),
            "",
            "| figure | value |",
            "| --- | --- |",
            f"| frames/s in / processed (all cameras) | {self.fps_in:.2f} / {self.fps_end_to_end:.2f} |",
            f"| active tracks per step (per camera frame) | {self.mean_tracks_per_step:.1f} "
            f"({self.mean_tracks_per_camera_frame:.1f}) |",
        ]
        for stage, ms in self.stage_ms_per_step.items():
            lines.append(f"| {stage} ms/step | {ms:.1f} |")
        occupancy = ", ".join(f"{k} {100 * v:.0f}%" for k, v in self.occupancy.items())
        drops = ", ".join(f"{k} {v}" for k, v in self.drops.items())
        lines += [
            f"| occupancy | {occupancy} |",
            f"| drops | {drops} |",
            f"| crops encoded / windows classified | {self.crops_encoded} / {self.windows_classified} |",
            f"| events | {self.events} |",
            f"| frame-to-event latency p50 / p95 ms | {_fmt(self.latency_ms_p50)} / {_fmt(self.latency_ms_p95)} |",
            *(
                f"| … {part} (with the wait for the next) p50 / p95 ms | {ms['p50']:.0f} / {ms['p95']:.0f} |"
                for part, ms in self.latency_parts_ms.items()
            ),
            f"| action recognition, ours (encode+head) ms, measured steps | {self.ours_action_ms_measured:.1f} |",
            f"| action recognition, naive (model.onnx on whole windows) ms | {self.naive_action_ms_measured:.1f} |",
            f"| naive / ours | {_fmt(self.naive_over_ours, '.1f')} |",
            f"| action recognition / (detection+tracking) | {100 * self.action_share_of_detect_track:.1f}% |",
            f"| CPU ({cpu_of}) | {self.cpu_percent:.0f}% |",
            f"| CPU ms per processed frame | {self.cpu_ms_per_frame:.1f} |",
            f"| … by thread, ms per processed frame | {self.by_thread_text()} |",
            f"| peak RSS MB{rss_of} | {self.peak_rss_mb:.0f} |",
        ]
        if self.gpu_mem_mib_max is not None:
            lines.append(
                f"| GPU memory max MiB / utilisation mean | {self.gpu_mem_mib_max:.0f} / {_fmt(self.gpu_util_mean)}% |"
            )
        if len(rss) >= 2:
            lines.append(
                f"| RSS first / last sample MB ({rss[-1][0]:.0f} s apart) | {rss[0][1]:.0f} / {rss[-1][1]:.0f} |"
            )
        return "\n".join(lines)

    def by_thread_text(self, top: int | None = None) -> str:
        """CPU ms per processed frame of each thread group (the ``top`` largest, then the rest summed)."""
        frames = max(self.frames, 1)
        groups = list(self.cpu_s_by_thread.items())
        shown, rest = (groups, []) if top is None else (groups[:top], groups[top:])
        parts = [f"{name} {1000.0 * s / frames:.1f}" for name, s in shown]
        if rest:
            parts.append(f"rest {1000.0 * sum(s for _, s in rest) / frames:.1f}")
        return ", ".join(parts) or "n/a"


def _fmt(value: float | None, spec: str = ".0f") -> str:
    return "n/a" if value is None else format(value, spec)


def runtime_label(runtime: str, processes: int, config: dict[str, Any]) -> str:
    """A sweep table's runtime column: the runtime, then each setting of the run that is not the default.

    Example:
        >>> runtime_label("pipelined", 1, {"detect_workers": 2, "detector": "/tmp/det.int8.onnx", "rect": True})
        'pipelined (rect detector input) (2 detect workers) (detector det.int8.onnx)'
        >>> runtime_label("sequential", 4, {"gpu_wait": "blocking", "detect_workers": 2, "rect": False})
        'sequential x4 processes (GPU wait: blocking) (square detector input)'
    """
    notes = []
    if config.get("preprocess", "auto") != "auto":
        notes.append(f"{config['preprocess']} preprocessing")
    if config.get("gpu_wait", "auto") != "auto":
        notes.append(f"GPU wait: {config['gpu_wait']}")
    if config.get("rect") is not None:  # None: detector.rect auto
        notes.append("rect detector input" if config["rect"] else "square detector input")
    if config.get("batch_padding", "auto") != "auto":
        notes.append(f"batch padding: {config['batch_padding']}")
    if runtime == "pipelined" and (config.get("detect_workers") or 1) > 1:  # the sequential loop has no workers
        notes.append(f"{config['detect_workers']} detect workers")
    if config.get("detector"):
        notes.append(f"detector {Path(str(config['detector'])).name}")
    label = runtime if processes == 1 else f"{runtime} x{processes} processes"
    return label + "".join(f" ({note})" for note in notes)


def sweep_table(results: list[BenchResult]) -> str:
    """One table for several runs (camera counts x runtimes), the CPU and GPU named above it.

    Example:
        >>> sweep_table([]).splitlines()[0].split(" | ")[:4]
        ['| K', 'runtime', 'frames/s in', 'processed/s']
    """
    head = (
        "| K | runtime | frames/s in | processed/s | p50 ms | p95 ms | frames/step | detect | track | encode "
        "| classify | emit ms/step | occupancy | drops | naive/ours | CPU | CPU ms/frame | RSS MB | GPU MiB / util |"
    )
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    if results:
        r0 = results[0]
        lines.insert(
            0,
            f"CPU: {r0.cpu_name}; GPU: {r0.gpu_name or 'none'}; providers: {', '.join(r0.providers)}; "
            f"rate: {r0.rate}\n",
        )
    for r in results:
        ms = r.stage_ms_per_step
        occupancy = " ".join(f"{k if len(k) <= 4 else k[:3]} {100 * v:.0f}%" for k, v in r.occupancy.items())
        drops = sum(r.drops.values())
        gpu = f"{r.gpu_mem_mib_max:.0f} / {_fmt(r.gpu_util_mean)}%" if r.gpu_mem_mib_max is not None else "-"
        runtime = runtime_label(r.runtime, r.processes, r.config)
        lines.append(
            f"| {r.config['cameras']} | {runtime} | {r.fps_in:.2f} | {r.fps_end_to_end:.2f} "
            f"| {_fmt(r.latency_ms_p50)} | {_fmt(r.latency_ms_p95)} | {r.frames / max(r.steps, 1):.1f} "
            f"| {ms.get('detect', 0):.0f} | {ms.get('track', 0):.0f} | {ms.get('encode', 0):.0f} "
            f"| {ms.get('classify', 0):.0f} | {ms.get('emit', 0):.0f} | {occupancy} | {drops} "
            f"| {_fmt(r.naive_over_ours, '.1f')} | {r.cpu_percent:.0f}% | {r.cpu_ms_per_frame:.1f} "
            f"| {r.peak_rss_mb:.0f} | {gpu} |"
        )
    return "\n".join(lines)


def thread_cpu_table(results: list[BenchResult], top: int = 6) -> str:
    """Each run's CPU ms per processed frame by thread group (the ``top`` largest, the rest summed): where
    the host's time goes at each camera count.

    Example:
        >>> r = BenchResult({"cameras": 2}, "pipelined", "max", "cpu", ["CPU"], 1, 10, 10, 1.0, 10.0, 10.0,
        ...                 1.0, 1.0, {}, {}, {}, 0, 0, 0, None, None, 0.0, 0.0, None, 0.0, 150.0, 100.0,
        ...                 cpu_s_by_thread={"actwatch-detect": 1.0, "main": 0.3, "actwatch-track": 0.2})
        >>> thread_cpu_table([r], top=2).splitlines()[2]
        '| 2 | pipelined | 150.0 | actwatch-detect 100.0, main 30.0, rest 20.0 |'
    """
    lines = ["| K | runtime | CPU ms/frame | by thread, ms/frame |", "| --- | --- | --- | --- |"]
    for r in results:
        runtime = runtime_label(r.runtime, r.processes, r.config)
        lines.append(f"| {r.config['cameras']} | {runtime} | {r.cpu_ms_per_frame:.1f} | {r.by_thread_text(top)} |")
    return "\n".join(lines)


def cpu_name() -> str:
    """The CPU's model name and this process's usable cores, from ``/proc/cpuinfo``."""
    name = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{name} ({usable_cores()} cores)"


def usable_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
