"""Configuration of the action model: the network (:class:`ModelConfig`) and its input (:class:`InputSpec`).

Both are strict, immutable pydantic models. They are stored inside every checkpoint and copied into the
exported ``manifest.json``, so the runtime, the track buffers and training all read the same numbers.

Example:
    >>> cfg = ModelConfig(temporal="gru", hidden_size=128, pretrained=False)
    >>> spec = InputSpec(seq_len=16, input_size=96)
    >>> spec.input_size, spec.window_seconds
    ((96, 96), 1.6)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from actwatch.settings import validation_problems

Arch = Literal["mobilenet_v2_lstm", "r3d_18"]
Temporal = Literal["lstm", "gru", "transformer"]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
# torchvision's video models (R3D-18) were trained on Kinetics-400 with these statistics.
KINETICS_MEAN: tuple[float, float, float] = (0.43216, 0.394666, 0.37645)
KINETICS_STD: tuple[float, float, float] = (0.22803, 0.22145, 0.216989)

MAX_SEQ_LEN = 512  # also the number of positions of the transformer head's positional encoding


def describe_validation_error(exc: ValidationError) -> str:
    """The problems of ``exc`` on one line, ``field: message; ...``, by the package's one formatter
    (:func:`actwatch.settings.validation_problems`)."""
    return "; ".join(validation_problems(exc))


def _bounded(default: int, ge: int, le: int, description: str) -> Any:
    """A described integer field between ``ge`` and ``le`` (the network's sizes)."""
    return Field(default, ge=ge, le=le, description=description)


class ModelConfig(BaseModel):
    """The network: a per-frame encoder with a temporal head, or a 3-D CNN.

    ``mobilenet_v2_lstm`` encodes each crop once with MobileNetV2 (1280-d features, cacheable per
    track) and classifies the sequence with ``temporal`` (LSTM, GRU or a small transformer encoder).
    ``r3d_18`` is torchvision's R3D-18 over the whole clip; it cannot reuse per-frame features.
    Which architectures support the feature cache is said by their network class
    (:func:`actwatch.model.networks.recognizer_class`), not here.

    Example:
        >>> ModelConfig(arch="r3d_18", pretrained=False).arch
        'r3d_18'
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    arch: Arch = Field(
        "mobilenet_v2_lstm",
        description="Network: 'mobilenet_v2_lstm' (per-frame MobileNetV2 + temporal head, feature-cacheable) "
        "or 'r3d_18' (torchvision R3D-18 3-D CNN over the clip).",
    )
    temporal: Temporal = Field(
        "lstm",
        description="Temporal head of mobilenet_v2_lstm: 'lstm', 'gru' or 'transformer' (ignored by r3d_18).",
    )
    hidden_size: int = _bounded(256, 4, 4096, "Hidden units of the RNN, or model width of the transformer head.")
    num_layers: int = _bounded(1, 1, 8, "Stacked RNN / transformer-encoder layers.")
    bidirectional: bool = Field(
        False,
        description="Bidirectional RNN: the head concatenates the forward state at the last step with the "
        "backward state at the first step (both have seen the whole window). Not for 'transformer'.",
    )
    num_heads: int = _bounded(4, 1, 64, "Attention heads of the transformer head; must divide hidden_size.")
    dropout: float = Field(
        0.3, ge=0.0, lt=1.0, description="Dropout before the last linear layer (and between stacked layers)."
    )
    fc_size: int = _bounded(128, 1, 8192, "Width of the hidden fully-connected layer.")
    pretrained: bool = Field(
        True,
        description="Start the backbone from pretrained weights (ImageNet for MobileNetV2, Kinetics-400 for "
        "R3D-18): torchvision's file when it is in the torch hub cache, else (MobileNetV2) the ImageNet weights "
        "`actwatch assets` fetched; random init + warning otherwise. Never downloads at run time.",
    )
    backbone_weights: Path | None = Field(
        None,
        description="Local state-dict file of the backbone (torchvision MobileNetV2 or R3D-18); "
        "takes precedence over 'pretrained'.",
    )

    @model_validator(mode="after")
    def _check_head(self) -> ModelConfig:
        if self.arch == "mobilenet_v2_lstm" and self.temporal == "transformer":
            if self.bidirectional:
                raise ValueError("bidirectional applies to the lstm/gru heads, not to 'transformer'")
            if self.hidden_size % self.num_heads:
                raise ValueError(f"hidden_size ({self.hidden_size}) must be divisible by num_heads ({self.num_heads})")
        return self


class InputSpec(BaseModel):
    """What the model expects: ``seq_len`` crops of ``input_size`` sampled at ``fps``, normalised.

    ``input_size`` accepts a single int for square crops.

    Example:
        >>> InputSpec().model_dump()["input_size"]
        (112, 112)
        >>> InputSpec.for_arch("r3d_18").mean == KINETICS_MEAN
        True
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    seq_len: int = Field(30, ge=1, le=MAX_SEQ_LEN, description="Crops per window (time steps).")
    input_size: tuple[int, int] = Field(
        (112, 112), description="Crop size (height, width) in pixels fed to the network."
    )
    fps: float = Field(
        10.0, gt=0.0, le=240.0, description="Rate (samples per second) at which a track's crops are sampled."
    )
    mean: tuple[float, float, float] = Field(
        IMAGENET_MEAN, description="Per-channel (R, G, B) mean subtracted after scaling pixels to [0, 1]."
    )
    std: tuple[float, float, float] = Field(
        IMAGENET_STD, description="Per-channel (R, G, B) standard deviation divided after the mean."
    )

    @field_validator("input_size", mode="before")
    @classmethod
    def _square(cls, value: Any) -> Any:
        return (value, value) if isinstance(value, int) else value

    @field_validator("input_size")
    @classmethod
    def _check_size(cls, value: tuple[int, int]) -> tuple[int, int]:
        if not all(16 <= v <= 1024 for v in value):
            raise ValueError(f"input_size {value}: height and width must be between 16 and 1024 pixels")
        return value

    @field_validator("std")
    @classmethod
    def _check_std(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if not all(v > 0 for v in value):
            raise ValueError(f"std {value}: every channel must be > 0")
        return value

    @property
    def window_seconds(self) -> float:
        """Stream time one window spans."""
        return round(self.seq_len / self.fps, 6)

    @classmethod
    def for_arch(cls, arch: Arch, **values: Any) -> InputSpec:
        """An InputSpec whose default normalisation matches ``arch``'s pretrained weights."""
        if arch == "r3d_18":
            values.setdefault("mean", KINETICS_MEAN)
            values.setdefault("std", KINETICS_STD)
        return cls(**values)
