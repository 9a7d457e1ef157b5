"""ModelConfig / InputSpec validation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from actwatch.model.config import (
    IMAGENET_MEAN,
    KINETICS_MEAN,
    KINETICS_STD,
    InputSpec,
    ModelConfig,
)
from actwatch.model.networks import recognizer_class


def test_defaults_match_the_product() -> None:
    spec = InputSpec()
    assert (spec.seq_len, spec.input_size, spec.fps, spec.mean) == (30, (112, 112), 10.0, IMAGENET_MEAN)
    assert spec.window_seconds == 3.0
    cfg = ModelConfig()
    cached = recognizer_class(cfg.arch).supports_feature_cache
    assert (cfg.arch, cfg.temporal, cached) == ("mobilenet_v2_lstm", "lstm", True)
    assert recognizer_class(ModelConfig(arch="r3d_18").arch).supports_feature_cache is False


def test_every_field_is_described() -> None:
    for model in (ModelConfig, InputSpec):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"


@pytest.mark.parametrize(
    ("cls", "values"),
    [
        (ModelConfig, {"unknown": 1}),
        (ModelConfig, {"arch": "resnet"}),
        (ModelConfig, {"temporal": "tcn"}),
        (ModelConfig, {"hidden_size": 0}),
        (ModelConfig, {"dropout": 1.0}),
        (ModelConfig, {"temporal": "transformer", "hidden_size": 30, "num_heads": 4}),
        (ModelConfig, {"temporal": "transformer", "bidirectional": True}),
        (InputSpec, {"seq_len": 0}),
        (InputSpec, {"fps": 0}),
        (InputSpec, {"input_size": (8, 8)}),
        (InputSpec, {"input_size": (112, 112, 3)}),
        (InputSpec, {"std": (0.2, 0.0, 0.2)}),
        (InputSpec, {"mean": (0.5, 0.5)}),
        (InputSpec, {"extra": True}),
    ],
)
def test_invalid_values_are_rejected(cls: type, values: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        cls(**values)


def test_input_size_accepts_an_int_and_configs_are_frozen() -> None:
    spec = InputSpec(input_size=96)
    assert spec.input_size == (96, 96)
    with pytest.raises(ValidationError):
        spec.seq_len = 5  # type: ignore[misc]
    assert InputSpec.model_validate(spec.model_dump(mode="json")) == spec


def test_for_arch_picks_the_normalisation_of_the_pretrained_weights() -> None:
    r3d = InputSpec.for_arch("r3d_18", seq_len=4)
    assert (r3d.mean, r3d.std, r3d.seq_len) == (KINETICS_MEAN, KINETICS_STD, 4)
    assert InputSpec.for_arch("mobilenet_v2_lstm").mean == IMAGENET_MEAN
    assert InputSpec.for_arch("r3d_18", mean=(0.5, 0.5, 0.5)).mean == (0.5, 0.5, 0.5)
