"""``actwatch predict`` end to end: real detector, real tracker, real exported ONNX model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from actwatch.cli.main import app
from actwatch.errors import ActwatchError
from tests.conftest import TEST_CLASSES
from tests.tracker.videos import write_video

runner = CliRunner()
FAST = ["--conf", "0.1"]


def test_vtest_tracks_get_probabilities_json(
    vtest_path: Path, exported_model_dir: Path, detector_weights: Path
) -> None:
    result = runner.invoke(
        app,
        [
            *("predict", str(vtest_path), "--model", str(exported_model_dir)),
            *("--detector", str(detector_weights), *FAST),
            *("--max-frames", "24", "--min-samples", "3", "--json"),
        ],
    )
    assert result.exit_code == 0, result.output
    tracks = json.loads(result.stdout)
    classified = [t for t in tracks if t["status"] != "too_short"]
    assert classified, "vtest.avi has pedestrians walking through the first seconds"
    for t in tracks:
        assert {"track_id", "windows", "first_time", "last_time", "probabilities"} <= set(t)
        assert 0.0 <= t["first_time"] <= t["last_time"] <= 2.4
    for t in classified:
        probs = t["probabilities"]
        assert set(probs) == set(TEST_CLASSES)
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-4)
        assert list(probs.values()) == sorted(probs.values(), reverse=True)
        assert t["windows"] >= 1
    assert [t["track_id"] for t in tracks] == sorted(t["track_id"] for t in tracks)


def test_vtest_table_from_a_checkpoint(vtest_path: Path, checkpoint_path: Path, detector_weights: Path) -> None:
    result = runner.invoke(
        app,
        [
            *("predict", str(vtest_path), "-m", str(checkpoint_path), "--detector", str(detector_weights)),
            *FAST,
            *("--max-frames", "16", "--person-classes", "0,1", "--min-samples", "2"),
        ],
    )
    assert result.exit_code == 0, result.output
    # Track ids are counted as tracks (one person can be several), with the time span they cover.
    assert "16 frames" in result.output and "tracks between 0.0 s and" in result.output
    # The checkpoint was never trained: predict says so, with the backbone's starting weights.
    assert "UNTRAINED" in result.output and "backbone random" in result.output
    lines = result.output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.lstrip().startswith("track"))
    rows = [line for line in lines[header + 1 :] if line[:5].strip().isdigit()]
    assert rows
    assert any(any(c in row for c in TEST_CLASSES) for row in rows)


def test_clip_without_persons(tmp_path: Path, exported_model_dir: Path, detector_weights: Path) -> None:
    clip = write_video(tmp_path / "empty.avi", 8, 10.0)
    args = ["predict", str(clip), "-m", str(exported_model_dir), "--detector", str(detector_weights), *FAST]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "no persons tracked in 8 frames" in result.output
    as_json = runner.invoke(app, [*args, "--json"])
    assert as_json.exit_code == 0 and json.loads(as_json.stdout) == []


def test_bad_inputs_are_user_errors(tmp_path: Path, exported_model_dir: Path, detector_weights: Path) -> None:
    base = ["-m", str(exported_model_dir), "--detector", str(detector_weights), *FAST]
    missing = runner.invoke(app, ["predict", str(tmp_path / "nothere.mp4"), *base])
    assert isinstance(missing.exception, ActwatchError) and "video not found" in str(missing.exception)
    bogus = tmp_path / "bogus.avi"
    bogus.write_text("not a video")
    unreadable = runner.invoke(app, ["predict", str(bogus), *base])
    assert isinstance(unreadable.exception, ActwatchError) and "bogus.avi" in str(unreadable.exception)
    clip = write_video(tmp_path / "c.avi", 2, 10.0)
    no_model = runner.invoke(app, ["predict", str(clip), "-m", str(tmp_path / "nomodel"), "--detector", "x.pt"])
    assert isinstance(no_model.exception, ActwatchError)
    bad_classes = runner.invoke(app, ["predict", str(clip), *base, "--person-classes", "a,b"])
    assert isinstance(bad_classes.exception, ActwatchError) and "--person-classes" in str(bad_classes.exception)


def test_cli_exits_2_without_traceback(tmp_path: Path, exported_model_dir: Path) -> None:
    env = {**os.environ, "ACTWATCH_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "actwatch",
            "predict",
            str(tmp_path / "nothere.mp4"),
            "-m",
            str(exported_model_dir),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    assert "error: video not found" in proc.stderr and "Traceback" not in proc.stderr
