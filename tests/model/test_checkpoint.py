"""Checkpoint round trip and every way a checkpoint file can be wrong."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from actwatch.errors import CheckpointError
from actwatch.model.checkpoint import (
    CHECKPOINT_FORMAT,
    Checkpoint,
    init_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from actwatch.model.config import InputSpec, ModelConfig
from actwatch.model.networks import ActionRecognizer
from actwatch.model.preprocess import preprocess_windows

CLASSES = ["walking", "standing", "fighting"]


def _payload(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def test_round_trip_gives_the_same_outputs(checkpoint_path: Path, tmp_path: Path) -> None:
    ckpt = load_checkpoint(checkpoint_path)
    assert ckpt.classes == tuple(CLASSES)
    assert (ckpt.input.seq_len, ckpt.input.input_size, ckpt.input.fps) == (8, (64, 64), 10.0)
    assert ckpt.model_config.hidden_size == 64 and ckpt.metadata["trained"] is False
    model = ckpt.build_model()
    assert isinstance(model, ActionRecognizer) and not model.training
    rng = np.random.default_rng(0)
    windows = torch.from_numpy(preprocess_windows(rng.integers(0, 256, (2, 8, 64, 64, 3), np.uint8), ckpt.input))
    with torch.no_grad():
        before = model(windows)
    again = tmp_path / "again.pt"
    save_checkpoint(ckpt, again)
    reloaded = load_checkpoint(again)
    with torch.no_grad():
        after = reloaded.build_model()(windows)
    torch.testing.assert_close(after, before, atol=0, rtol=0)
    assert not torch.allclose(before[0], before[1])  # different windows, different logits
    assert reloaded.model_config == ckpt.model_config and reloaded.input == ckpt.input


def test_init_checkpoint_defaults_and_metadata(tmp_path: Path) -> None:
    ckpt = init_checkpoint(
        ["a", "b"], ModelConfig(arch="r3d_18", pretrained=False), InputSpec.for_arch("r3d_18", seq_len=4, input_size=32)
    )
    assert ckpt.num_classes == 2 and ckpt.model_config.arch == "r3d_18"
    assert ckpt.metadata == {
        "trained": False,
        "backbone": "random",
        "backbone_sha256": None,
        "batchnorm_calibrated_on_noise": True,
    }
    assert ckpt.state_dict["net.fc.weight"].shape == (2, 512)


def test_from_model_stores_metadata_and_rejects_non_plain_values(tmp_path: Path) -> None:
    cfg = ModelConfig(hidden_size=8, fc_size=4, pretrained=False)
    model = init_checkpoint(["x", "y"], cfg, InputSpec(seq_len=4, input_size=32)).build_model()
    ckpt = Checkpoint.from_model(
        model, ["x", "y"], cfg, InputSpec(seq_len=4, input_size=32), {"epochs": 3, "val": {"acc": 0.5}}
    )
    save_checkpoint(ckpt, tmp_path / "m.pt")
    assert load_checkpoint(tmp_path / "m.pt").metadata == {"epochs": 3, "val": {"acc": 0.5}}
    with pytest.raises(CheckpointError, match="metadata"):
        Checkpoint.from_model(model, ["x", "y"], cfg, InputSpec(), {"path": tmp_path})


@pytest.mark.parametrize(
    ("classes", "message"),
    [([], "empty"), (["a", "a"], "unique"), (["a", " "], "non-blank"), (["a", " b"], "surrounding"), ("ab", "list")],
)
def test_class_names_are_validated(classes: object, message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        init_checkpoint(classes, ModelConfig(hidden_size=8, fc_size=4, pretrained=False))  # type: ignore[arg-type]


def test_save_is_atomic_and_replaces(checkpoint_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ckpt = load_checkpoint(checkpoint_path)
    target = tmp_path / "sub" / "model.pt"
    target.parent.mkdir()
    target.write_bytes(b"old")
    save_checkpoint(ckpt, target)
    assert load_checkpoint(target).classes == ckpt.classes
    assert sorted(os.listdir(target.parent)) == ["model.pt"]  # no temporary file left behind

    def disk_full(obj: object, f: Path) -> None:  # a write that fails half way (cannot happen on demand)
        Path(f).write_bytes(b"PK\x03\x04partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(ckpt, target)
    monkeypatch.undo()
    assert load_checkpoint(target).classes == ckpt.classes  # the old file is intact
    assert sorted(os.listdir(target.parent)) == ["model.pt"]
    with pytest.raises(CheckpointError, match="must be tensors"):
        Checkpoint(ckpt.model_config, ckpt.classes, ckpt.input, {}, {"x": object()})  # type: ignore[dict-item]


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"not found.*actwatch init-model"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="not a file"):
        load_checkpoint(tmp_path)


def test_truncated_checkpoint(checkpoint_path: Path, tmp_path: Path) -> None:
    data = checkpoint_path.read_bytes()
    for keep in (len(data) // 2, len(data) - 100):
        cut = tmp_path / f"cut{keep}.pt"
        cut.write_bytes(data[:keep])
        with pytest.raises(CheckpointError, match="truncated or corrupt"):
            load_checkpoint(cut)


def test_random_bytes_and_text(tmp_path: Path) -> None:
    noise = tmp_path / "noise.pt"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes())
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        load_checkpoint(noise)
    fake_zip = tmp_path / "fake.pt"
    fake_zip.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(fake_zip)


def test_yolo_weights_are_not_a_checkpoint(assets_dir: Path) -> None:
    from actwatch.assets import torch_weights_path

    with pytest.raises(CheckpointError, match=r"not an actwatch checkpoint.*YOLO"):
        load_checkpoint(torch_weights_path(assets_dir))


def test_foreign_torch_files(tmp_path: Path, checkpoint_path: Path) -> None:
    bare = tmp_path / "bare.pt"
    torch.save(load_checkpoint(checkpoint_path).state_dict, bare)
    with pytest.raises(CheckpointError, match="bare state_dict"):
        load_checkpoint(bare)
    other = tmp_path / "other.pt"
    torch.save({"epoch": 3, "format": "something-else"}, other)
    with pytest.raises(CheckpointError, match="without the 'actwatch-checkpoint' format marker"):
        load_checkpoint(other)
    pickled = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), pickled)
    with pytest.raises(CheckpointError, match="not an actwatch checkpoint"):
        load_checkpoint(pickled)
    tensor = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(CheckpointError, match="not an actwatch checkpoint"):
        load_checkpoint(tensor)


@pytest.mark.parametrize("key", ["classes", "state_dict", "input_spec", "model_config", "version"])
def test_missing_key(checkpoint_path: Path, tmp_path: Path, key: str) -> None:
    payload = _payload(checkpoint_path)
    del payload[key]
    path = tmp_path / "incomplete.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=f"missing \\['{key}'\\]"):
        load_checkpoint(path)


def test_inconsistent_contents(checkpoint_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "bad.pt"
    base = _payload(checkpoint_path)
    assert base["format"] == CHECKPOINT_FORMAT

    def check(payload: dict, message: str) -> None:
        torch.save(payload, path)
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(path)

    # weights for 3 classes but 4 class names
    check({**base, "classes": [*base["classes"], "running"]}, "do not match its model config")
    # weights of a smaller head than the config says
    check({**base, "model_config": {**base["model_config"], "hidden_size": 32}}, "other shapes")
    # a temporal head of another type
    check({**base, "model_config": {**base["model_config"], "temporal": "transformer"}}, "missing.*unexpected")
    check(
        {**base, "model_config": {**base["model_config"], "temporal": "gru"}},
        "rnn.weight_ih_l0: \\(256, 1280\\) in the file, \\(192, 1280\\) for the config",
    )
    # a tensor removed
    state = dict(base["state_dict"])
    state.pop("head.classifier.3.bias")
    check({**base, "state_dict": state}, "1 missing \\(e.g. head.classifier.3.bias\\)")
    check({**base, "input_spec": {**base["input_spec"], "seq_len": 0}}, "invalid model config or input spec")
    check({**base, "model_config": {**base["model_config"], "colour": "red"}}, "invalid model config")
    check({**base, "classes": ["a", "a", "b"]}, "unique")
    check({**base, "version": 99}, "version 99.*upgrade actwatch")
