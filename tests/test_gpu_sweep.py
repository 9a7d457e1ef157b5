"""``benchmarks/gpu_sweep.sh``, the GPU sweep's one script, on this machine's CPU (it must fall back
cleanly where there is no GPU), and ``benchmarks/spy_summary.py``, which reads the profiles it takes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_sweep.sh"


@pytest.mark.slow
def test_the_gpu_sweep_falls_back_to_the_cpu_and_writes_its_table(
    tmp_path: Path, detector_weights: Path, vtest_path: Path
) -> None:
    env = {**os.environ, "ACTWATCH_CACHE_DIR": str(detector_weights.parents[1])}
    payload, out = tmp_path / "payload", tmp_path / "out"
    prepared = subprocess.run(["bash", str(SCRIPT), "prepare", str(payload)], env=env, capture_output=True, text=True)
    assert prepared.returncode == 0, prepared.stderr
    assert (payload / "cache" / "detectors" / detector_weights.name).is_file()
    assert (payload / "cache" / "samples" / vtest_path.name).is_file()
    run_env = {
        **env,
        "CPU_ONLY": "1",
        "PY": sys.executable,
        "SWEEP": "2:3",  # two cameras, each runtime for 3 s of looping clip
        "HOST_K": "2",  # and the pipeline with host preprocessing beside it
        "SHARDS": "2:2",  # and the pipeline with its cameras split over two processes
        "BLOCKING": "2:1",  # and in one process with --gpu-wait blocking (no GPU here: said in the log)
        "FIXED": "2:1",  # and with every detector and encoder call at one size
        "PROFILE_K": "1",  # py-spy is not installed here: said, and ignored
        "SERVE_K": "2",  # and actwatch serve with its 2 cameras in one process, then in two
        "SERVE_PROCESSES": "1,2",
        "SERVE_S": "8",
        "BUDGET_S": "1500",  # the serve runs come after the sweep: never skipped for time here
        "OUT": str(out),
    }
    ran = subprocess.run(["bash", str(SCRIPT), "run", str(payload)], env=run_env, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "py-spy not found: PROFILE_K and PROFILE_GIL_K ignored" in ran.stdout
    runs = json.loads((out / "gpu_sweep.json").read_text())["runs"]
    shown = [(r["config"]["cameras"], r["runtime"], r["config"]["preprocess"], r["processes"]) for r in runs]
    assert shown == [
        (2, "sequential", "auto", 1),
        (2, "pipelined", "auto", 1),
        (2, "pipelined", "auto", 1),  # GPU wait: blocking
        (2, "pipelined", "auto", 1),  # fixed padding ("K2-fixed1" sorts before "K2-host")
        (2, "pipelined", "host", 1),
        (2, "pipelined", "auto", 2),
    ]
    assert [r["config"]["gpu_wait"] for r in runs] == ["auto", "auto", "blocking", "auto", "auto", "auto"]
    assert [r["config"]["batch_padding"] for r in runs] == ["auto"] * 3 + ["fixed", "auto", "auto"]
    assert all(r["frames"] > 0 and r["providers"] == ["CPUExecutionProvider"] for r in runs)
    table = (out / "gpu_sweep.md").read_text()
    assert "GPU: none" in table and "| 2 | pipelined (host preprocessing) |" in table
    assert "| 2 | pipelined x2 processes |" in table and "| 2 | pipelined (GPU wait: blocking) |" in table
    assert "| 2 | pipelined (batch padding: fixed) |" in table
    # the host's CPU per frame, thread by thread: the two processes' detect threads pooled in one row
    by_thread = table[table.index("Host CPU per processed frame, by thread") :]
    assert re.search(r"\| 2 \| pipelined x2 processes \| [\d.]+ \| .*actwatch-detect [\d.]+", by_thread)
    log = (out / "bench.log").read_text()
    assert "pipeline.gpu_wait: blocking not applied: no network runs on CUDA or TensorRT" in log
    assert "GPU: none (no nvidia-smi)" in (out / "env.txt").read_text()
    serve = (out / "serve.md").read_text()
    assert "| figure | processes=1 | processes=2 |" in serve, serve + log
    processed = re.search(r"\| frames/s processed \(all cameras\) \| ([\d.]+) \| ([\d.]+) \|", serve)
    assert processed and all(float(fps) > 0 for fps in processed.groups()), serve


def test_gpu_sweep_refuses_an_unknown_command() -> None:
    ran = subprocess.run(["bash", str(SCRIPT), "sweep"], capture_output=True, text=True)
    assert ran.returncode == 2 and "error: unknown command 'sweep': use prepare or run" in ran.stderr


def test_spy_summary_adds_up_each_thread_s_samples(tmp_path: Path) -> None:
    stacks = tmp_path / "spy.txt"
    stacks.write_text(
        "thread (1): actwatch-track;run (threading.py:1);update (actwatch/tracker/bytetrack.py:9) 6\n"
        "thread (1): actwatch-track;run (threading.py:1);flags (actwatch/tracker/static.py:3) 2\n"
        "thread (2): actwatch-action;run (threading.py:1);encode (actwatch/model/runtime.py:5) 4\n"
        "not a stack line\n"
    )
    shown = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "spy_summary.py"), str(stacks), "--top", "2"],
        capture_output=True,
        text=True,
    )
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert "## actwatch-track: 8 samples (100% of the busiest)" in text
    assert "## actwatch-action: 4 samples (50% of the busiest)" in text
    assert " 75.0%  update (actwatch/tracker/bytetrack.py:9)" in text
    assert text.index("actwatch-track") < text.index("actwatch-action")  # the busiest first


def test_the_encoder_probe_runs_on_the_cpu(exported_model_dir: Path, detector_weights: Path) -> None:
    """``benchmarks/encoder_probe.py`` (what the action model's encoder costs per call, and when a
    call's batch size repeats or changes) runs where there is no GPU: only the CPU provider then."""
    env = {**os.environ, "ACTWATCH_CACHE_DIR": str(detector_weights.parents[1]), "PYTHONPATH": str(REPO)}
    probe = [sys.executable, str(REPO / "benchmarks" / "encoder_probe.py"), "--model", str(exported_model_dir)]
    options = ["--batches", "1,4", "--runs", "2", "--alternate", "4,4,2", "--detector-sizes", "1,2", "--profile", "2"]
    ran = subprocess.run([*probe, *options, "--providers", "cpu"], env=env, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    lines = ran.stdout.splitlines()
    assert any(line.startswith("| cpu (session on CPUExecutionProvider") for line in lines)
    assert not any("cuda" in line for line in lines)  # no GPU here: no CUDA setting tried
    for shown in (
        "ActionRuntime.encode, padding pow2:",
        "ActionRuntime.encode, padding off:",
        "ActionRuntime.classify (the head), padding off:",
        "detector, [1, 2] frames per call, padding pow2:",
        "detector, [1, 2] frames per call, padding fixed:",
        "detector graph, one session, [1, 2] frames per call:",
        "CPUExecutionProvider: ",
    ):
        assert any(shown in line for line in lines), shown
    bad = subprocess.run([*probe, "--batches", "x"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "batch sizes are positive integers" in bad.stderr
