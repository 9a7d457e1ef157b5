"""``actwatch bench --processes N``: the cameras split over N processes (real detector, real ONNX models,
real event stores), started together, their figures pooled into one result."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from actwatch.bench import BenchConfig
from actwatch.bench_report import BenchResult, sweep_table, usable_cores
from actwatch.bench_shards import ShardOutcome, merge_shards, shard_sizes
from actwatch.cli.main import app
from actwatch.errors import ActwatchError


@pytest.mark.slow
def test_two_processes_each_run_their_cameras_and_the_figures_pool(
    exported_model_dir: Path, vtest_path: Path, detector_weights: Path
) -> None:
    args = ["bench", "--cameras", "3", "--processes", "2", "--frames", "10", "--model", str(exported_model_dir)]
    result = CliRunner().invoke(app, [*args, "--video", str(vtest_path), "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout[result.stdout.index("{") :])
    assert figures["processes"] == 2 and figures["config"]["processes"] == 2
    # each process's sessions take their share of the cores, not every core each
    assert figures["config"]["intra_op_threads"] == max(1, usable_cores() // 2)
    # every camera of both shards (2 + 1) ran all its frames, one detector call each on this CPU
    assert figures["frames"] == figures["frames_in"] == 30 and figures["steps"] == 30
    assert figures["mean_tracks_per_camera_frame"] > 1 and figures["crops_encoded"] > 0
    assert figures["events"] > 0 and 0 < figures["latency_ms_p50"] <= figures["latency_ms_p95"]
    assert set(figures["occupancy"]) >= {"detect", "track", "action", "alert", "writer"}
    assert sum(figures["drops"].values()) == 0
    assert figures["fps_end_to_end"] == pytest.approx(30 / figures["wall_s"])
    assert "latencies_ms" not in figures  # the raw samples pool the percentiles; they are not printed


def test_a_shard_that_fails_names_itself_and_why(tmp_path: Path) -> None:
    missing = tmp_path / "none.avi"
    result = CliRunner().invoke(app, ["bench", "--cameras", "2", "--processes", "2", "--video", str(missing)])
    assert isinstance(result.exception, ActwatchError)
    message = str(result.exception)
    assert message.startswith("bench shard ") and "none.avi not found; give an existing file with --video" in message


def test_more_processes_than_cameras_is_refused() -> None:
    with pytest.raises(ActwatchError, match="--processes 3 needs between 1 and as many processes as cameras"):
        shard_sizes(2, 3)
    assert shard_sizes(64, 4) == [16] * 4 and shard_sizes(5, 2) == [3, 2]


def _shard(index: int, started_at: float, latencies: list[float], gpu_util: float | None) -> ShardOutcome:
    figures: dict[str, Any] = dict(
        steps=4, frames_in=8, frames=8, wall_s=2.0, fps_in=4.0, fps_end_to_end=4.0, mean_tracks_per_step=3.0,
        mean_tracks_per_camera_frame=1.5, stage_ms_per_step={"detect": 100.0, "track": 5.0},
        occupancy={"detect": 0.8, "writer": 0.1}, drops={"stale": 1, "evidence": index},
        crops_encoded=10, windows_classified=4, events=len(latencies), latency_ms_p50=None, latency_ms_p95=None,
        ours_action_ms_measured=10.0, naive_action_ms_measured=50.0, naive_over_ours=5.0,
        action_share_of_detect_track=0.1, cpu_percent=95.0, peak_rss_mb=700.0,
        cpu_s_by_thread={"actwatch-detect": 1.5, "main": 0.4 + index},
        gpu_name="NVIDIA H100 80GB HBM3" if gpu_util is not None else None,
        gpu_mem_mib_max=1000.0 + index if gpu_util is not None else None, gpu_util_mean=gpu_util,
        latencies_ms=latencies,
    )  # fmt: skip
    return ShardOutcome(
        index, BenchResult({}, "pipelined", "max", "cpu", ["CUDAExecutionProvider"], **figures), started_at
    )


def test_pooled_figures_are_over_the_whole_run() -> None:
    cfg = BenchConfig(cameras=4, processes=2)
    merged = merge_shards(cfg, [_shard(0, 100.0, [100.0, 200.0], 20.0), _shard(1, 101.0, [300.0, 400.0, 500.0], 40.0)])
    assert merged.wall_s == pytest.approx(3.0)  # 100.0 .. 103.0: the first start to the last end
    assert (merged.frames, merged.fps_end_to_end, merged.steps) == (16, pytest.approx(16 / 3.0), 8)
    assert merged.latency_ms_p50 == 300.0 and merged.events == 5  # the percentiles of every shard's events
    assert merged.drops == {"stale": 2, "evidence": 1} and merged.occupancy == {"detect": 0.8, "writer": 0.1}
    assert (merged.cpu_percent, merged.peak_rss_mb, merged.naive_over_ours) == (190.0, 1400.0, 5.0)
    # each thread group's CPU seconds added over the processes, most first; 190% of 3 s over 16 frames
    assert merged.cpu_s_by_thread == {"actwatch-detect": 3.0, "main": pytest.approx(1.8)}
    assert list(merged.cpu_s_by_thread) == ["actwatch-detect", "main"]
    assert merged.cpu_ms_per_frame == pytest.approx(1000 * 1.9 * 3.0 / 16)
    # --json's figures (the derived CPU ms per frame among them) read back as the same result
    assert json.loads(merged.to_json())["cpu_ms_per_frame"] == pytest.approx(merged.cpu_ms_per_frame)
    assert BenchResult.from_dict(json.loads(merged.to_json())).table() == merged.table()
    assert (merged.gpu_mem_mib_max, merged.gpu_util_mean) == (1001.0, 30.0)
    table = sweep_table([merged])
    assert "| 4 | pipelined x2 processes | " in table and "GPU: NVIDIA H100 80GB HBM3" in table
    assert "in 2 processes" in merged.table() and "the sum of the processes' peaks" in merged.table()
