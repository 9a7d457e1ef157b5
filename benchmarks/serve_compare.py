"""``actwatch serve`` measured as a user runs it: start-up time, memory, frames/s and detect ms.

For each tree, a process runs ``actwatch serve`` on a generated configuration: ``--cameras`` cameras
that loop OpenCV's vtest.avi (as fast as they decode unless ``--realtime``), the tree's default detector
(each revision's own: the torch one before issue 8, the ONNX one after) and an untrained exported
action model. Measured from outside, as an operator would:

- start-up: process start to the first ``/readyz`` 200;
- RSS (``/proc/<pid>/status``) right after start and after ``--seconds`` of serving;
- frames/s processed and detect milliseconds per frame over that window, from ``/metrics``
  (``actwatch_camera_frames_processed_total``, ``actwatch_stage_latency_seconds{stage="detect"}``).

RSS and CPU are those of the whole process tree (``serve`` and, with ``pipeline.processes`` > 1, its
compute processes). ``--processes 1,2`` runs this tree once per value of ``pipeline.processes``, side by
side: the cameras in the service's one process, then split over compute processes.

With ``--base REV`` that revision (a temporary git worktree, see ``compare_revisions.base_worktree``)
and this tree run one after the other with this interpreter (the same venv; ``PYTHONPATH`` puts each
tree first), and the figures are printed side by side.

    .venv/bin/python benchmarks/serve_compare.py --base main --seconds 300 --cameras 2
    .venv/bin/python benchmarks/serve_compare.py --processes 1,2 --seconds 120 --cameras 2 --realtime
    .venv/bin/python benchmarks/serve_compare.py --processes 1,8 --cameras 64 --any-provider --events  # a GPU box

``--events`` adds a rule under which every track alerts (every 5 s at most), so the window also gives
the events' frame-to-event p50/p95, read from ``actwatch_frame_to_event_seconds`` as Prometheus would
(interpolated inside its buckets: 50, 100, 250, 500 ms, 1 s, ...), and with compute processes the
hand-off's share of it (``actwatch_compute_event_handoff_seconds``: the event from its compute process to
the service's).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import nullcontext
from pathlib import Path

from compare_revisions import REPO, base_worktree

from actwatch.bench import rss_mb
from actwatch.thread_cpu import process_tree, tree_cpu_seconds

FIGURES = [
    ("startup_s", "start-up to ready, s", ".1f"),
    ("rss_start_mb", "RSS after start, MB", ".0f"),
    ("rss_end_mb", "RSS after the window, MB", ".0f"),
    ("cpu_percent", "CPU over the window, % of one core", ".0f"),
    ("fps", "frames/s processed (all cameras)", ".2f"),
    ("detect_ms_per_frame", "detect ms per frame", ".1f"),
    ("events", "events in the window", ".0f"),
    ("event_ms_p50", "frame-to-event p50, ms (histogram)", ".0f"),
    ("event_ms_p95", "frame-to-event p95, ms (histogram)", ".0f"),
    ("handoff_ms_p50", "of it, compute process to service p50, ms", ".1f"),
    ("handoff_ms_p95", "of it, compute process to service p95, ms", ".1f"),
]
# --events: every track alerts at most every EVENT_COOLDOWN_S on the model's first class (any score)
EVENT_COOLDOWN_S = 5.0  # (threshold 0.001: any score of an untrained model)
READY_TIMEOUT_S = 600.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), ""
    except (urllib.error.URLError, OSError):
        return 0, ""


def _sample(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of metric ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, label_text = head.partition("{")
        if metric != name:
            continue
        if all(f'{k}="{v}"' in label_text for k, v in labels.items()):
            total += float(value)
    return total


def _buckets(text: str, name: str) -> dict[float, float]:
    """Cumulative counts of histogram ``name`` by upper bound (``+Inf`` as infinity)."""
    out: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket{{"):
            head, _, value = line.rpartition(" ")
            bound = head.split('le="', 1)[1].split('"', 1)[0]
            out[float(bound)] = out.get(float(bound), 0.0) + float(value)
    return out


def histogram_quantile(before: str, after: str, name: str, q: float) -> float:
    """The ``q`` quantile of what histogram ``name`` counted between two scrapes, interpolated inside its
    bucket as Prometheus' ``histogram_quantile`` does (NaN when nothing was counted).

    Example:
        >>> def scrape(*counts):
        ...     return chr(10).join(f'h_bucket{{le="{b}"}} {c}' for b, c in zip(("0.1", "0.5", "+Inf"), counts))
        >>> before, after = scrape(0, 0, 0), scrape(5, 15, 20)
        >>> round(histogram_quantile(before, after, "h", 0.5), 3)  # the 10th of 20: halfway into (0.1, 0.5]
        0.3
    """
    start, end = _buckets(before, name), _buckets(after, name)
    bounds = sorted(end)
    counts = [end[b] - start.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return float("nan")
    rank = q * counts[-1]
    lower, below = 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= rank:
            if bound == float("inf"):
                return lower  # beyond the last finite bound: that bound is all one can say
            return lower + (bound - lower) * (rank - below) / (count - below) if count > below else bound
        lower, below = bound, count
    return lower


def _config(
    tree: Path,
    work: Path,
    port: int,
    token: str,
    video: Path,
    model_dir: Path,
    cameras: int,
    realtime: bool,
    processes: int | None = None,
    *,
    any_provider: bool = False,
    event_label: str | None = None,
) -> Path:
    config: dict[str, object] = {
        "data_dir": str(work / "data"),
        "server": {"host": "127.0.0.1", "port": port, "token": token},
        "cameras": [{"id": f"cam{i}", "url": str(video), "loop": True, "realtime": realtime} for i in range(cameras)],
        # Both classes of the default detector are persons; said explicitly so that every revision
        # detects the same persons whatever its default.
        "detector": {"person_class_ids": [0, 1]},
        # The CPU provider, named: a revision before the provider policy would try a GPU provider that
        # the installed onnxruntime build lists but this machine cannot run.
        "model": {"dir": str(model_dir), "providers": ["CPUExecutionProvider"]},
    }
    if any_provider:  # the best this machine has (a GPU); only for trees with the provider policy
        config["model"] = {"dir": str(model_dir)}
    if event_label is not None:
        rule = {"label": event_label, "threshold": 0.001, "n": 1, "m": 1, "cooldown_s": EVENT_COOLDOWN_S}
        config["alerts"] = {"rules": [{**rule, "min_track_age_s": 0}]}
    if (tree / "actwatch" / "capture" / "source_policy.py").exists():  # revisions with the URL policy
        config["sources"] = {"file_dirs": [str(video.parent)]}
    if processes is not None:
        config["pipeline"] = {"processes": processes}
    path = work / "actwatch.yaml"
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    return path


def measure(tree: Path, config: Path, port: int, token: str, seconds: float) -> dict[str, float]:
    """Start ``actwatch serve`` from ``tree``; return its figures (see the module docstring)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, "-c", "from actwatch.cli.main import main; main()", "serve", "--config", str(config)]
    base = f"http://127.0.0.1:{port}"
    log = config.with_suffix(".log").open("w")
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        while _get(f"{base}/readyz")[0] != 200:
            if proc.poll() is not None:
                log.flush()
                tail = Path(log.name).read_text(errors="replace")[-2000:]  # the folder goes with the run
                sys.exit(f"error: serve exited with {proc.returncode} in {tree}; its log ends:\n{tail}")
            if time.perf_counter() - started > READY_TIMEOUT_S:
                sys.exit(f"error: serve in {tree} not ready after {READY_TIMEOUT_S:.0f} s; see {log.name}")
            time.sleep(0.2)
        startup = time.perf_counter() - started
        rss_start = sum(rss_mb(p) for p in process_tree(proc.pid))
        _, before = _get(f"{base}/metrics", token)
        cpu_before = tree_cpu_seconds(proc.pid)
        t0 = time.perf_counter()
        time.sleep(seconds)
        _, after = _get(f"{base}/metrics", token)
        window = time.perf_counter() - t0
        cpu_s = tree_cpu_seconds(proc.pid) - cpu_before
        rss_end = sum(rss_mb(p) for p in process_tree(proc.pid))
        _, ready_body = _get(f"{base}/readyz")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    frames = _sample(after, "actwatch_camera_frames_processed_total") - _sample(
        before, "actwatch_camera_frames_processed_total"
    )
    detect_s = _sample(after, "actwatch_stage_latency_seconds_sum", stage="detect") - _sample(
        before, "actwatch_stage_latency_seconds_sum", stage="detect"
    )
    events = _sample(after, "actwatch_events_total") - _sample(before, "actwatch_events_total")
    latency = "actwatch_frame_to_event_seconds"
    handoff = "actwatch_compute_event_handoff_seconds"  # compute processes only (NaN in one process)
    providers = json.loads(ready_body).get("providers") if ready_body else None
    print(f"  {tree}: providers {providers or 'not reported'}", file=sys.stderr)
    return {
        "startup_s": startup,
        "rss_start_mb": rss_start,
        "rss_end_mb": rss_end,
        "cpu_percent": 100 * cpu_s / window if window > 0 else float("nan"),
        "fps": frames / window if window > 0 else float("nan"),
        "detect_ms_per_frame": 1000 * detect_s / frames if frames else float("nan"),
        "events": events,
        "event_ms_p50": 1000 * histogram_quantile(before, after, latency, 0.50),
        "event_ms_p95": 1000 * histogram_quantile(before, after, latency, 0.95),
        "handoff_ms_p50": 1000 * histogram_quantile(before, after, handoff, 0.50),
        "handoff_ms_p95": 1000 * histogram_quantile(before, after, handoff, 0.95),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", help="git revision to run beside this tree (e.g. main); unset: this tree only")
    parser.add_argument("--seconds", type=float, default=300.0, help="measuring window after ready (default 300)")
    parser.add_argument("--cameras", type=int, default=1, help="looping vtest.avi cameras (default 1)")
    parser.add_argument("--realtime", action="store_true", help="cameras at the video's rate (default: flat out)")
    parser.add_argument("--processes", help="values of pipeline.processes to run this tree with, e.g. 1,2")
    parser.add_argument(
        "--any-provider",
        action="store_true",
        help="the action model on the best provider there is (a GPU), not named CPU (trees with the policy)",
    )
    parser.add_argument(
        "--events",
        action="store_true",
        help=f"every track alerts (each {EVENT_COOLDOWN_S:.0f} s at most), for the frame-to-event figures",
    )
    args = parser.parse_args()
    if args.cameras < 1 or args.seconds <= 0:
        parser.error("--cameras must be >= 1 and --seconds > 0")
    try:
        processes = [int(p) for p in args.processes.split(",")] if args.processes else [None]
    except ValueError:
        parser.error(f"--processes takes numbers separated by commas, e.g. 1,2; got {args.processes!r}")
    if any(p is not None and not 1 <= p <= args.cameras for p in processes):
        parser.error("each --processes value must be from 1 to --cameras")

    from actwatch.assets import ensure_sample_video
    from actwatch.demo_model import export_untrained_model
    from actwatch.model.config import InputSpec

    with tempfile.TemporaryDirectory(prefix="actwatch-serve-compare-") as tmp:
        work = Path(tmp)
        model_dir = export_untrained_model(work / "model", InputSpec(seq_len=16, input_size=(112, 112), fps=10.0))
        video = ensure_sample_video()
        token = secrets.token_urlsafe(24)
        event_label = json.loads((model_dir / "manifest.json").read_text())["classes"][0] if args.events else None
        runs: list[tuple[str, Path, int | None]] = [
            ("this" if p is None else f"processes={p}", REPO, p) for p in processes
        ]
        results: dict[str, dict[str, float]] = {}
        with base_worktree(args.base) if args.base else nullcontext(None) as base_tree:
            if base_tree is not None:
                runs.insert(0, ("base", base_tree, None))
            for name, tree, process_count in runs:
                run_dir = work / name
                run_dir.mkdir()
                port = _free_port()
                config = _config(
                    tree,
                    run_dir,
                    port,
                    token,
                    video,
                    model_dir,
                    args.cameras,
                    args.realtime,
                    process_count,
                    any_provider=args.any_provider,
                    event_label=event_label,
                )
                print(f"{name}: actwatch serve from {tree} ...", file=sys.stderr, flush=True)
                results[name] = measure(tree, config, port, token, args.seconds)
    mode = "realtime" if args.realtime else "flat out"
    print(f"actwatch serve, {args.cameras} looping vtest.avi camera(s) ({mode}), window {args.seconds:.0f} s")
    names = list(results)
    print("\n| figure | " + " | ".join(names) + " |\n| --- |" + " --- |" * len(names))
    for key, label, spec in FIGURES:
        print(f"| {label} | " + " | ".join(format(results[n][key], spec) for n in names) + " |")


if __name__ == "__main__":
    main()
