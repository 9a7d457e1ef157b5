"""Train -> evaluate -> export -> service-style inference; run folder, resume, modes, DDP, CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from actwatch.export.onnx_export import export_checkpoint
from actwatch.model.checkpoint import load_checkpoint
from actwatch.model.config import ModelConfig
from actwatch.model.runtime import ActionRuntime
from actwatch.model.windows import window_indices
from actwatch.train.config import TrainConfig
from actwatch.train.dataset import DatasetIndex
from actwatch.train.evaluate import evaluate_checkpoint
from actwatch.train.trainer import TrainResult, train
from tests.support.net import free_port

from .conftest import small_config


def test_run_folder_contents(trained_run: TrainResult) -> None:
    run = trained_run.run_dir
    for name in ("config.json", "run.json", "results.json", "report.md"):
        assert (run / name).is_file(), name
    for name in ("loss.png", "accuracy.png", "confusion_matrix.png", "confusion_val.png"):
        assert (run / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    results = json.loads((run / "results.json").read_text())
    assert len(results["history"]) == 2 and results["best_epoch"] in (1, 2)
    assert results["test"]["count"] == 6 and "top2_accuracy" in results["test"]
    assert set(results["test"]["per_class"]) == {"moving_left", "moving_right"}
    ckpt = load_checkpoint(trained_run.best_checkpoint)  # an ordinary actwatch checkpoint
    assert ckpt.classes == ("moving_left", "moving_right")
    assert (ckpt.input.seq_len, ckpt.input.input_size, ckpt.input.fps) == (8, (48, 48), 10.0)
    assert ckpt.metadata["trained"] is True and ckpt.metadata["epoch"] == results["best_epoch"]
    assert load_checkpoint(trained_run.last_checkpoint).metadata["epoch"] == 2


def test_evaluate_export_and_service_parity(
    trained_run: TrainResult, small_dataset: DatasetIndex, tmp_path: Path
) -> None:
    res = evaluate_checkpoint(trained_run.best_checkpoint, small_dataset.root, split="test", out_dir=tmp_path / "rep")
    report = res.report.read_text()
    assert "top-1 accuracy" in report and "top-2 accuracy" in report and "| moving_left |" in report
    assert (tmp_path / "rep" / "confusion_matrix.png").is_file()
    assert res.metrics.to_dict()["accuracy"] == pytest.approx(trained_run.test["accuracy"])  # type: ignore[index]

    export_checkpoint(trained_run.best_checkpoint, tmp_path / "exported")
    runtime = ActionRuntime(tmp_path / "exported")
    assert runtime.classes == ("moving_left", "moving_right") and runtime.spec.seq_len == 8
    by_id = {r.seq_id: r for r in small_dataset.split("test")}
    windows = []
    for seq_id in res.seq_ids:
        crops = small_dataset.read_sequence(by_id[seq_id])
        windows.append(crops[window_indices(len(crops), 8, offset="center")])
    # As the service does it: each crop encoded once, then the head on windows of features.
    features = np.stack([runtime.encode(w) for w in windows])
    service_probs = runtime.classify(features)
    diff = float(np.abs(service_probs - res.probabilities).max())
    whole = float(np.abs(runtime.classify_crops(np.stack(windows)) - res.probabilities).max())
    print(f"\nmax |p_onnx - p_torch|: split path {diff:.2e}, whole model {whole:.2e}")
    assert diff <= 1e-4 and whole <= 1e-4


def test_resume_continues_exactly(small_dataset: DatasetIndex, tmp_path: Path) -> None:
    straight = train(small_config(tmp_path / "a", epochs=3), small_dataset.root, progress=False)
    first = train(small_config(tmp_path / "b", epochs=2), small_dataset.root, progress=False)
    resumed = train(small_config(tmp_path / "b", epochs=3), small_dataset.root, resume=first.run_dir, progress=False)
    assert resumed.run_dir == first.run_dir and len(resumed.history) == 3
    for a, b in zip(straight.history, resumed.history, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-6)
        assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-6)


@pytest.mark.parametrize(
    ("mode", "model"),
    [
        ("finetune", ModelConfig(pretrained=False, hidden_size=16, fc_size=8, temporal="gru")),
        ("frozen", ModelConfig(pretrained=False, hidden_size=16, fc_size=8, temporal="transformer", num_heads=2)),
        ("finetune", ModelConfig(arch="r3d_18", pretrained=False)),
    ],
    ids=["finetune-gru", "frozen-transformer", "finetune-r3d18"],
)
def test_pixel_modes_train_on_cpu(mode: str, model: ModelConfig, small_dataset: DatasetIndex, tmp_path: Path) -> None:
    cfg = small_config(tmp_path, mode=mode, model=model, epochs=1, batch_size=4, augment={"hflip": False})
    before = load_checkpoint_state(cfg, small_dataset)
    result = train(cfg, small_dataset.root, progress=False)
    after = load_checkpoint(result.last_checkpoint)
    assert after.model_config.arch == model.arch
    changed = {k for k, v in after.state_dict.items() if not np.array_equal(v.numpy(), before[k])}
    encoder_keys = {k for k in before if k.startswith(("encoder.", "net.layer", "net.stem"))}
    if mode == "finetune":
        assert changed & encoder_keys  # end to end: the backbone learned too
    else:
        assert changed and not (changed & encoder_keys)  # frozen: only the head changed
    assert np.isfinite(result.history[0]["train_loss"])


def load_checkpoint_state(cfg: TrainConfig, dataset: DatasetIndex) -> dict[str, np.ndarray]:
    """The initial weights a run with ``cfg`` starts from (same seed, same init as the trainer)."""
    import torch

    from actwatch.model.checkpoint import init_checkpoint
    from actwatch.model.config import InputSpec

    torch.manual_seed(cfg.seed)
    spec = InputSpec.for_arch(cfg.model.arch, seq_len=cfg.seq_len, input_size=dataset.input_size, fps=dataset.fps)
    ckpt = init_checkpoint(dataset.classes, cfg.model, spec)
    return {k: v.numpy().copy() for k, v in ckpt.state_dict.items()}


def test_torchrun_world_size_one_gloo(
    small_dataset: DatasetIndex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch.distributed as dist

    for key, value in {
        "RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())
    }.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    result = train(small_config(tmp_path, epochs=1, device="cpu"), small_dataset.root, progress=False)
    info = json.loads((result.run_dir / "run.json").read_text())
    assert (info["backend"], info["world_size"]) == ("gloo", 1)
    assert not dist.is_initialized()  # the group was torn down
    assert result.best_checkpoint.is_file()


def run_cli(args: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    from actwatch.cli.main import main

    monkeypatch.setattr(sys, "argv", ["actwatch", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    return int(exc.value.code or 0)


def test_cli_train_evaluate_and_errors(
    small_dataset: DatasetIndex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "train.yaml").write_text(
        "model:\n  hidden_size: 16\n  fc_size: 8\n  pretrained: false\ntensorboard: false\n"
    )
    args = ["train", "--data", str(small_dataset.root), "--config", str(tmp_path / "train.yaml"), "--name", "cli"]
    args += ["--epochs", "1", "--seq-len", "8", "--temporal", "gru", "--out", str(tmp_path / "exp"), "--quiet"]
    assert run_cli(args, monkeypatch) == 0
    out = capsys.readouterr().out
    assert "best epoch 1" in out and "actwatch export" in out
    (run_dir,) = (tmp_path / "exp").iterdir()
    assert json.loads((run_dir / "config.json").read_text())["model"]["temporal"] == "gru"
    best = run_dir / "checkpoints" / "best.pt"
    evaluate = ["evaluate", "--checkpoint", str(best), "--data", str(small_dataset.root), "--split", "val"]
    assert run_cli(evaluate, monkeypatch) == 0
    assert "top-1" in capsys.readouterr().out and (run_dir / "eval_best_val" / "report.md").is_file()

    bad = [
        ["train", "--data", str(tmp_path / "nothing")],
        ["train", "--data", str(small_dataset.root), "--mode", "cached", "--arch", "r3d_18"],
        ["train", "--resume", str(run_dir), "--name", "other"],
        ["evaluate", "--checkpoint", str(best), "--data", str(small_dataset.root), "--split", "holdout"],
        ["extract", str(tmp_path / "no-such-folder"), "--out", str(tmp_path / "ds2"), "--whole-frame"],
    ]
    for argv in bad:
        assert run_cli(argv, monkeypatch) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "Traceback" not in err, err
