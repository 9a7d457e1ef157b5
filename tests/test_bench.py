"""``actwatch bench`` end to end on a few frames: the command the README's benchmark figures come from.

It builds its stages with ``build_stages`` from an ``AppConfig`` made for the run, so a change of the
configuration's rules (e.g. the camera URL policy) must keep it working; this test is what notices.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from actwatch.bench import LATENCY_PARTS, BenchConfig, bench_app_config
from actwatch.cli.main import app
from actwatch.errors import ActwatchError


@pytest.mark.slow
def test_bench_runs_the_pipeline_and_times_the_naive_path(
    exported_model_dir: Path, vtest_path: Path, detector_weights: Path
) -> None:
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "--cameras",
            "2",
            "--frames",
            "12",
            "--model",
            str(exported_model_dir),
            "--video",
            str(vtest_path),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout[result.stdout.index("{") :])
    # pipelined on this CPU: one frame per detector call (detect_batch: auto), the cameras in turn
    assert figures["frames"] == 24 and figures["steps"] == 24
    assert figures["mean_tracks_per_camera_frame"] > 1  # vtest's pedestrians are tracked
    assert figures["crops_encoded"] > 0 and figures["windows_classified"] > 0  # 8-sample test windows
    assert figures["naive_action_ms_measured"] > 0 and figures["naive_over_ours"] is not None
    assert set(figures["stage_ms_per_step"]) >= {"detect", "track", "encode", "classify"}
    # where each event's time went, part by part (they follow each other in time: none is negative)
    parts = figures["latency_parts_ms"]
    assert list(parts) == list(LATENCY_PARTS) and figures["events"] > 0
    assert all(0 <= ms["p50"] <= ms["p95"] for ms in parts.values())


@pytest.mark.slow
def test_bench_runs_both_runtimes_side_by_side_over_a_sweep(
    exported_model_dir: Path, vtest_path: Path, detector_weights: Path
) -> None:
    args = ["bench", "--both", "--sweep", "1,2", "--frames", "6", "--model", str(exported_model_dir)]
    result = CliRunner().invoke(app, [*args, "--video", str(vtest_path), "--json"])
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout[result.stdout.index("{") :])["runs"]
    assert [(r["config"]["cameras"], r["runtime"]) for r in runs] == [
        (1, "sequential"),
        (1, "pipelined"),
        (2, "sequential"),
        (2, "pipelined"),
    ]
    for run in runs:
        # As fast as the pipeline takes frames: every frame fed is processed, nothing dropped.
        assert run["frames"] == run["frames_in"] == 6 * run["config"]["cameras"]
        assert sum(run["drops"].values()) == 0
        assert set(run["occupancy"]) >= {"detect", "track", "action", "alert"}
        assert 0 < run["occupancy"]["detect"] <= 1.0
        assert "latency_ms_p95" in run and run["cpu_percent"] > 0 and run["peak_rss_mb"] > 0
        # the process's CPU time, thread by thread: the groups add up to it (what ended unsampled included)
        by_thread, cpu_s = run["cpu_s_by_thread"], run["cpu_percent"] / 100 * run["wall_s"]
        assert sum(by_thread.values()) >= cpu_s - 0.02
        assert run["cpu_ms_per_frame"] == pytest.approx(1000 * cpu_s / run["frames"])
    assert set(runs[1]["occupancy"]) >= {"intake", "writer"}  # the pipelined runtime's own threads
    # the pipelined runtime's stages each in a named thread, its detector busiest; the sequential loop at
    # this rate runs in the benchmark's main thread
    pipelined = runs[1]["cpu_s_by_thread"]
    # (each stage's thread has its group, at 0.0 when it spent under a clock tick: 6 frames of tracking may)
    assert {"actwatch-detect", "actwatch-track", "actwatch-action"} <= set(pipelined)
    assert pipelined["actwatch-detect"] > pipelined["actwatch-track"]
    sequential = runs[0]["cpu_s_by_thread"]
    assert sequential["main"] > max(sequential.get("actwatch-detect", 0.0), sequential.get("actwatch-track", 0.0))


@pytest.mark.slow
def test_a_sweep_prints_where_the_cpu_went_thread_by_thread(exported_model_dir: Path, vtest_path: Path) -> None:
    args = ["bench", "--sweep", "1", "--frames", "4", "--no-naive", "--model", str(exported_model_dir)]
    result = CliRunner().invoke(app, [*args, "--video", str(vtest_path)])
    assert result.exit_code == 0, result.output
    table = result.stdout[result.stdout.index("CPU time per processed frame, by thread") :]
    # one row for the one run: its CPU ms per frame, then the thread groups, the detector's among them
    assert re.search(r"\| 1 \| pipelined \| [\d.]+ \| .*actwatch-detect [\d.]+", table), table


def test_bench_refuses_a_bad_sweep() -> None:
    result = CliRunner().invoke(app, ["bench", "--sweep", "1,x"])
    assert isinstance(result.exception, ActwatchError)
    assert "--sweep takes camera counts >= 1" in str(result.exception)


def test_bench_with_a_missing_video_is_a_clear_error(tmp_path: Path) -> None:
    # `actwatch` (cli.main.main) prints an ActwatchError as `error: ...` and exits 2.
    result = CliRunner().invoke(app, ["bench", "--video", str(tmp_path / "none.avi")])
    assert isinstance(result.exception, ActwatchError)
    assert "none.avi not found; give an existing file with --video" in str(result.exception)


@pytest.mark.slow
def test_bench_with_replayed_detections_and_host_preprocessing(
    exported_model_dir: Path, vtest_path: Path, detector_weights: Path
) -> None:
    args = ["bench", "--cameras", "2", "--frames", "10", "--model", str(exported_model_dir), "--video"]
    result = CliRunner().invoke(app, [*args, str(vtest_path), "--replay-detections", "--preprocess", "host", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout[result.stdout.index("{") :])
    assert figures["config"]["replay_detections"] is True and figures["config"]["preprocess"] == "host"
    assert figures["frames"] == 20 and figures["mean_tracks_per_camera_frame"] > 1
    # windows lost to the track buffers' bounds are reported with the drops (none here)
    assert figures["drops"]["windows evicted (memory)"] == 0 == figures["drops"]["windows evicted (track cap)"]


def test_bench_refuses_an_unknown_preprocessing() -> None:
    result = CliRunner().invoke(app, ["bench", "--preprocess", "gpu"])
    assert isinstance(result.exception, ActwatchError)
    assert "--preprocess must be auto, host or graph, not 'gpu'" in str(result.exception)


def test_the_bench_s_scheduling_options_reach_the_service_settings(
    tmp_path: Path, vtest_path: Path, detector_weights: Path, exported_model_dir: Path
) -> None:
    def pipeline_of(cfg: BenchConfig) -> tuple[object, object, object]:
        files = {"video": vtest_path, "weights": detector_weights, "model_dir": exported_model_dir}
        settings = bench_app_config(cfg, work=tmp_path, alert_label="walking", **files).pipeline
        return settings.detect_batch, settings.frame_wait_ms, settings.detect_niceness

    assert pipeline_of(BenchConfig()) == ("auto", "auto", "auto")
    assert pipeline_of(BenchConfig(detect_batch=2, frame_wait_ms=0, detect_niceness=19)) == (2, 0, 19)


def test_the_bench_s_detector_and_gpu_options_reach_the_service_settings(
    tmp_path: Path, vtest_path: Path, detector_weights: Path, exported_model_dir: Path
) -> None:
    files = {"video": vtest_path, "weights": detector_weights, "model_dir": exported_model_dir}
    plain = bench_app_config(BenchConfig(), work=tmp_path, alert_label="walking", **files)
    assert (plain.detector.rect, plain.pipeline.gpu_wait, plain.model.max_batch) == ("auto", "auto", None)
    assert plain.model.batch_padding == plain.detector.batch_padding == "auto"
    given = bench_app_config(
        BenchConfig(rect=True, gpu_wait="blocking", batch_padding="fixed"), work=tmp_path, alert_label="x", **files
    )
    assert (given.detector.rect, given.pipeline.gpu_wait) == (True, "blocking")
    assert given.model.batch_padding == given.detector.batch_padding == "fixed"  # --batch-padding: both stages
    result = CliRunner().invoke(app, ["bench", "--batch-padding", "square"])
    assert isinstance(result.exception, ActwatchError)
    assert "--batch-padding must be auto, fixed, pow2 or off, not 'square'" in str(result.exception)
    result = CliRunner().invoke(app, ["bench", "--gpu-wait", "sleep"])
    assert isinstance(result.exception, ActwatchError)
    assert "--gpu-wait must be auto, spin, yield or blocking, not 'sleep'" in str(result.exception)
