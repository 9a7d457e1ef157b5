"""``actwatch init-model``, ``export`` and ``model-info`` through the real command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from actwatch.cli.main import app, main
from actwatch.errors import ActwatchError, CheckpointError, ConfigError
from actwatch.model.checkpoint import load_checkpoint
from actwatch.model.manifest import load_manifest

runner = CliRunner()
TINY = ["--seq-len", "4", "--input-size", "32", "--hidden-size", "16", "--fc-size", "8", "--no-pretrained"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_init_model_export_and_info(tmp_path: Path) -> None:
    ckpt = tmp_path / "model.pt"
    result = runner.invoke(
        app,
        [
            "init-model",
            "--classes",
            "walking, standing,fighting",
            "--out",
            str(ckpt),
            "--fps",
            "5",
            *TINY,
            "--temporal",
            "gru",
            "--bidirectional",
            "--num-layers",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"wrote untrained checkpoint {ckpt}" in result.output
    assert "classes:    walking, standing, fighting" in result.output
    assert "window:     4 crops at 5 fps (0.8 s)" in result.output
    loaded = load_checkpoint(ckpt)
    assert loaded.classes == ("walking", "standing", "fighting")
    assert (loaded.input.seq_len, loaded.input.input_size, loaded.input.fps) == (4, (32, 32), 5.0)
    assert (loaded.model_config.temporal, loaded.model_config.bidirectional) == ("gru", True)

    out = tmp_path / "exported"
    result = runner.invoke(app, ["export", "--checkpoint", str(ckpt), "--out", str(out), "--opset", "17"])
    assert result.exit_code == 0, result.output
    assert "split vs whole" in result.output and "max |diff|" in result.output and " NO" not in result.output
    manifest = load_manifest(out)
    assert manifest.classes == ["walking", "standing", "fighting"] and manifest.fps == 5.0

    result = runner.invoke(app, ["model-info", str(out)])
    assert result.exit_code == 0, result.output
    assert "exported model folder" in result.output and "feature dim 1280" in result.output
    assert "input size: 32x32" in result.output
    # Never trained: said on its own line, with the backbone's starting weights, for both forms.
    assert "model:      UNTRAINED" in result.output and "backbone random" in result.output
    result = runner.invoke(app, ["model-info", str(ckpt)])
    assert result.exit_code == 0, result.output
    assert "mobilenet_v2_lstm, gru head" in result.output and "trained=False" in result.output
    assert "model:      UNTRAINED" in result.output and "backbone random" in result.output


def test_model_info_shows_the_pretrained_backbone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, assets_dir: Path
) -> None:
    """init-model starts from `actwatch assets`' ImageNet weights by default; the checkpoint, the exported
    manifest and model-info all say which file (and its sha256)."""
    from actwatch.assets import BACKBONE_SHA256, ensure_backbone_weights

    asset = ensure_backbone_weights(assets_dir)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no torchvision file: the asset is used
    monkeypatch.setenv("ACTWATCH_CACHE_DIR", str(assets_dir))
    ckpt, out = tmp_path / "m.pt", tmp_path / "exported"
    result = runner.invoke(app, ["init-model", "--classes", "a,b", "--out", str(ckpt), *TINY[:-1]])
    assert result.exit_code == 0 and "warning" not in result.output, result.output
    metadata = load_checkpoint(ckpt).metadata
    assert (metadata["backbone"], metadata["backbone_sha256"]) == (str(asset), BACKBONE_SHA256)
    assert metadata["batchnorm_calibrated_on_noise"] is False  # pretrained statistics are kept
    assert runner.invoke(app, ["export", "--checkpoint", str(ckpt), "--out", str(out)]).exit_code == 0
    assert load_manifest(out).checkpoint["metadata"]["backbone_sha256"] == BACKBONE_SHA256
    for path in (ckpt, out):
        result = runner.invoke(app, ["model-info", str(path)])
        assert result.exit_code == 0, result.output
        assert f"backbone:   started from {asset} (sha256 {BACKBONE_SHA256})" in result.output


def test_init_model_r3d_and_rectangular_input(tmp_path: Path) -> None:
    ckpt = tmp_path / "r3d.pt"
    result = runner.invoke(
        app,
        [
            "init-model",
            "--classes",
            "a,b",
            "--out",
            str(ckpt),
            "--arch",
            "r3d_18",
            "--seq-len",
            "4",
            "--input-size",
            "32x48",
            "--no-pretrained",
        ],
    )
    assert result.exit_code == 0, result.output
    loaded = load_checkpoint(ckpt)
    assert loaded.model_config.arch == "r3d_18" and loaded.input.input_size == (32, 48)
    assert loaded.input.mean[0] == pytest.approx(0.43216)  # Kinetics statistics for R3D-18
    assert "feature cache: no" in result.output


def test_pretrained_fallback_is_reported_as_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("ACTWATCH_CACHE_DIR", str(tmp_path / "actwatch"))  # no `actwatch assets` weights either
    ckpt = tmp_path / "m.pt"
    result = runner.invoke(app, ["init-model", "--classes", "a,b", "--out", str(ckpt), *TINY[:-1], "--pretrained"])
    assert result.exit_code == 0, result.output
    assert "warning: pretrained MobileNet_V2_Weights" in result.output
    assert load_checkpoint(ckpt).metadata["backbone"] == "random"


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (["--classes", "a,a"], CheckpointError, "unique"),
        (["--classes", "a,,b"], CheckpointError, "non-blank"),
        (["--classes", "a,b", "--arch", "resnet"], ConfigError, "invalid model options: arch"),
        (["--classes", "a,b", "--input-size", "big"], ConfigError, "HEIGHTxWIDTH"),
        (["--classes", "a,b", "--seq-len", "0"], ConfigError, "invalid input options: seq_len"),
    ],
)
def test_init_model_user_errors(tmp_path: Path, args: list[str], error: type, message: str) -> None:
    result = runner.invoke(app, ["init-model", "--out", str(tmp_path / "m.pt"), *args])
    assert isinstance(result.exception, error), result.output
    assert message in str(result.exception)
    assert not (tmp_path / "m.pt").exists()


def test_init_model_does_not_overwrite_without_force(tmp_path: Path) -> None:
    target = tmp_path / "m.pt"
    target.write_bytes(b"precious")
    result = runner.invoke(app, ["init-model", "--classes", "a,b", "--out", str(target), *TINY])
    assert isinstance(result.exception, ConfigError) and "--force" in str(result.exception)
    assert target.read_bytes() == b"precious"
    result = runner.invoke(app, ["init-model", "--classes", "a,b", "--out", str(target), *TINY, "--force"])
    assert result.exit_code == 0, result.output
    assert load_checkpoint(target).classes == ("a", "b")


def test_model_info_errors(tmp_path: Path) -> None:
    result = runner.invoke(app, ["model-info", str(tmp_path / "nothing")])
    assert isinstance(result.exception, ActwatchError) and "not found" in str(result.exception)
    result = runner.invoke(app, ["model-info", str(tmp_path)])  # a folder without manifest.json
    assert isinstance(result.exception, ActwatchError) and "no manifest.json" in str(result.exception)


def test_missing_checkpoint_prints_one_error_line_and_exits_2(tmp_path: Path) -> None:
    """The installed console script, as a user runs it."""
    args = ["export", "--checkpoint", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "out")]
    actwatch = Path(sys.executable).with_name("actwatch")
    proc = subprocess.run([str(actwatch), *args], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: checkpoint") and "not found" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "out").exists()


def test_truncated_checkpoint_through_main(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"PK\x03\x04 definitely not complete")
    monkeypatch.setattr(sys, "argv", ["actwatch", "model-info", str(bad)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: checkpoint") and "truncated or corrupt" in err
    assert "Traceback" not in err
