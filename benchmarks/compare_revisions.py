"""``actwatch bench`` on two revisions of this repository, alternated in one run, figures side by side.

A refactor must not change what the pipeline does or costs. This script checks out ``--base`` (default
``HEAD~1``) into a temporary git worktree, then runs ``actwatch bench --json`` with the same arguments
``--rounds`` times for each tree, alternating base and working tree so that machine load falls on both
alike, and prints the median of each figure side by side with the ratio.

    .venv/bin/python benchmarks/compare_revisions.py --base HEAD~1 --rounds 2 -- --cameras 2 --frames 100

Both trees run with this interpreter (the same venv, so the same torch, onnxruntime and Ultralytics);
only the ``actwatch`` package differs (``PYTHONPATH`` puts each tree first).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

FIGURES = [
    ("fps_end_to_end", "end-to-end frames/s", ".2f"),
    ("mean_tracks_per_camera_frame", "tracks per camera frame", ".2f"),
    ("stage_ms_per_step.detect", "detect ms/step", ".1f"),
    ("stage_ms_per_step.track", "track ms/step", ".2f"),
    ("stage_ms_per_step.encode", "encode ms/step", ".1f"),
    ("stage_ms_per_step.classify", "classify ms/step", ".1f"),
    ("crops_encoded", "crops encoded", ".0f"),
    ("windows_classified", "windows classified", ".0f"),
    ("events", "events", ".0f"),
    ("latency_ms_p50", "frame-to-event p50 ms", ".0f"),
    ("latency_ms_p95", "frame-to-event p95 ms", ".0f"),
    ("naive_over_ours", "naive / ours", ".1f"),
    ("cpu_ms_per_frame", "CPU ms per processed frame", ".1f"),
    ("peak_rss_mb", "peak RSS MB", ".0f"),
]


def _get(result: dict[str, object], dotted: str) -> float | None:
    value: object = result
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return float(value) if isinstance(value, int | float) else None


@contextmanager
def base_worktree(rev: str) -> Iterator[Path]:
    """Revision ``rev`` of this repository checked out in a temporary git worktree, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="actwatch-compare-") as tmp:
        tree = Path(tmp) / "base"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(tree), rev], check=True)
        try:
            yield tree
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False)


def _run(tree: Path, bench_args: list[str]) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, "-c", "from actwatch.cli.main import main; main()", "bench", "--json", *bench_args]
    proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"error: bench failed in {tree} (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    out = proc.stdout
    return json.loads(out[out.index("{") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="HEAD~1", help="git revision to compare with (default HEAD~1)")
    parser.add_argument("--rounds", type=int, default=2, help="runs per tree, alternated (default 2)")
    parser.add_argument("bench_args", nargs="*", help="arguments for `actwatch bench` (after --)")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    with base_worktree(args.base) as base_tree:
        runs: dict[str, list[dict[str, object]]] = {"base": [], "this": []}
        for i in range(args.rounds):
            for name, tree in (("base", base_tree), ("this", REPO)):
                print(f"round {i + 1}/{args.rounds}: {name} ...", file=sys.stderr, flush=True)
                runs[name].append(_run(tree, args.bench_args))
    rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", args.base], capture_output=True, text=True)
    print(f"actwatch bench {' '.join(args.bench_args)}: median of {args.rounds} alternated runs each")
    print(f"\n| figure | base ({rev.stdout.strip()}) | this tree | this / base |\n| --- | --- | --- | --- |")
    for key, label, spec in FIGURES:
        values = {}
        for name, results in runs.items():
            found = [v for v in (_get(r, key) for r in results) if v is not None]
            values[name] = statistics.median(found) if found else None
        base, this = values["base"], values["this"]
        ratio = f"{this / base:.2f}" if base and this is not None else "n/a"
        cells = [format(v, spec) if v is not None else "n/a" for v in (base, this)]
        print(f"| {label} | {cells[0]} | {cells[1]} | {ratio} |")


if __name__ == "__main__":
    main()
