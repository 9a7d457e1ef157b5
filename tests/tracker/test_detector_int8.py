"""The int8 detector (``actwatch quantize-detector``): made from the real detector, calibrated on real
frames of vtest.avi, served by the same PersonDetector, and checked against the float graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from actwatch.cli.main import app
from actwatch.errors import ActwatchError
from actwatch.fileio import sha256_file
from actwatch.tracker.detector import DetectorSettings, PersonDetector
from actwatch.tracker.detector_int8 import compare_detectors, head_nodes_to_keep_float, sample_frames
from actwatch.tracker.detector_model import read_manifest


@pytest.fixture(scope="module")
def int8_run(tmp_path_factory: pytest.TempPathFactory, detector_weights: Path, vtest_path: Path) -> tuple[Path, str]:
    """The command's own run: 6 calibration frames (minmax, the quick method), 4 others to check on."""
    out = tmp_path_factory.mktemp("int8") / "detector.int8.onnx"
    args = ["quantize-detector", "--weights", str(detector_weights), "--video", str(vtest_path), "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--frames", "6", "--method", "minmax", "--check-frames", "4"])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_the_int8_detector_has_its_manifest_and_keeps_the_head_float(int8_run: tuple[Path, str]) -> None:
    graph, output = int8_run
    manifest = read_manifest(graph)
    assert manifest is not None and manifest.sha256 == sha256_file(graph)
    assert manifest.input_size == (640, 640) and manifest.person_class_ids == [0, 1] and manifest.dynamic_batch
    assert "int8 (QDQ, per-channel weights, minmax calibration on 6 frames of vtest.avi)" in manifest.source
    model = onnx.load(str(graph))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("DequantizeLinear") > 60 and "QuantizeLinear" in ops  # the backbone's convolutions
    head = {n.name: n for n in model.graph.node if n.name.startswith("/model.22/dfl/")}
    produced_by = {out: n for n in model.graph.node for out in n.output}
    softmax = next(n for n in head.values() if n.op_type == "Softmax")
    assert produced_by[softmax.input[0]].op_type != "DequantizeLinear"  # box decoding stays float
    assert "found by the int8 one" in output and "serve it with:  detector: {weights:" in output


def test_the_int8_detector_finds_the_float_detector_s_persons(
    int8_run: tuple[Path, str], detector_weights: Path, vtest_path: Path
) -> None:
    """On frames it was not calibrated on, the int8 graph finds the persons the float one scores 0.25
    or more (and the other way round), one frame at a time and in a batch alike."""
    graph, _ = int8_run
    frames = sample_frames(vtest_path, 11)[1::2]  # frames 72, 216 ... 648: the calibration took every 79th
    agreement = compare_detectors(detector_weights, graph, frames)
    assert agreement.persons >= 20 and agreement.persons_back >= 20
    assert agreement.found >= 0.9 * agreement.persons and agreement.found_back >= 0.9 * agreement.persons_back
    assert agreement.mean_score_change < 0.1 and agreement.int8_ms > 0 and agreement.float_ms > 0
    detector = PersonDetector(graph, DetectorSettings(conf=0.25, device="cpu"))
    batch = detector.detect(frames[:2])
    for found, frame in zip(batch, frames[:2], strict=True):
        alone = detector.detect([frame])[0]
        np.testing.assert_allclose(found.xyxy, alone.xyxy, atol=1e-3)


def test_a_graph_that_is_not_a_yolov8_detector_is_refused(exported_model_dir: Path) -> None:
    with pytest.raises(ActwatchError, match="not an Ultralytics YOLOv8 export"):
        head_nodes_to_keep_float(onnx.load(str(exported_model_dir / "encoder.onnx")))


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["--method", "entropy"], "--method must be percentile or minmax, not 'entropy'"),
        (["--video", "/nonexistent/clip.mp4"], "video not found: /nonexistent/clip.mp4"),
        (["--weights", "/nonexistent/d.onnx"], "detector graph not found: /nonexistent/d.onnx"),
    ],
)
def test_bad_options_are_clear_errors(options: list[str], said: str, detector_weights: Path) -> None:
    result = CliRunner().invoke(app, ["quantize-detector", "--weights", str(detector_weights), *options])
    assert isinstance(result.exception, ActwatchError), result.output
    assert said in str(result.exception)


def test_the_float_graph_is_never_overwritten(detector_weights: Path) -> None:
    before = sha256_file(detector_weights)
    result = CliRunner().invoke(
        app, ["quantize-detector", "--weights", str(detector_weights), "--out", str(detector_weights)]
    )
    assert isinstance(result.exception, ActwatchError) and "--out is the float graph itself" in str(result.exception)
    assert sha256_file(detector_weights) == before


def test_a_file_that_is_not_an_onnx_graph_is_a_clear_error(tmp_path: Path, vtest_path: Path) -> None:
    junk = tmp_path / "detector.onnx"
    junk.write_text("not a graph")
    options = ["--weights", str(junk), "--video", str(vtest_path), "--frames", "2", "--check-frames", "0"]
    result = CliRunner().invoke(app, ["quantize-detector", *options])
    assert isinstance(result.exception, ActwatchError), result.output
    assert f"{junk} is not a readable ONNX graph" in str(result.exception)
    assert not (tmp_path / "detector.int8.onnx").exists()
