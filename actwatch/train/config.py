"""``TrainConfig``: every setting of ``actwatch train``, from a YAML file and/or command-line flags.

Example:
    >>> cfg = TrainConfig(epochs=5, model=ModelConfig(temporal="gru", pretrained=False))
    >>> cfg.mode, cfg.model.temporal
    ('cached', 'gru')
    >>> load_train_config(None, {"epochs": 3, "model": {"hidden_size": 64}}).model.hidden_size
    64
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from actwatch.model.config import ModelConfig
from actwatch.settings import read_yaml, validate_settings, validation_problems


class AugmentConfig(BaseModel):
    """Pixel augmentation, drawn once per window and applied identically to all of its frames.

    Only possible when crops are encoded during training (``frozen`` and ``finetune`` modes); cached
    features were computed once from the original crops, so ``cached`` mode trains without it.

    Example:
        >>> AugmentConfig(hflip=False).color_jitter
        0.2
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="Augment training windows (frozen/finetune modes only).")
    hflip: bool = Field(
        True, description="Mirror windows left-right with probability 0.5 (disable for direction labels)."
    )
    color_jitter: float = Field(
        0.2, ge=0.0, le=1.0, description="Strength of brightness, contrast and saturation jitter (0 = off)."
    )
    crop_scale: tuple[float, float] = Field(
        (0.7, 1.0), description="Area range of the random resized crop, as fractions of the crop (1,1 = off)."
    )

    @model_validator(mode="after")
    def _check(self) -> AugmentConfig:
        lo, hi = self.crop_scale
        if not 0.05 <= lo <= hi <= 1.0:
            raise ValueError(f"crop_scale {self.crop_scale}: need 0.05 <= low <= high <= 1")
        return self


class TrainConfig(BaseModel):
    """All training settings; ``config.json`` of each run is this model dumped.

    Example:
        >>> TrainConfig(mode="finetune", batch_size=4).batch_size
        4
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("actwatch", pattern=r"^[A-Za-z0-9_.-]+$", description="Run name (folder prefix).")
    out_dir: Path = Field(Path("experiments"), description="Parent folder of the run folders.")
    mode: Literal["cached", "frozen", "finetune"] = Field(
        "cached",
        description="'cached': frozen encoder, features computed once and cached on disk, only the "
        "temporal head trains; 'frozen': frozen encoder run on every step (allows pixel augmentation); "
        "'finetune': everything trains end to end.",
    )
    model: ModelConfig = Field(default_factory=ModelConfig, description="Network architecture.")
    seq_len: int = Field(30, ge=1, le=512, description="Frames per window (the InputSpec default is 30).")
    short_policy: Literal["loop", "pad"] = Field(
        "loop", description="Sequences shorter than seq_len: 'loop' repeats them, 'pad' repeats the last frame."
    )
    windows_per_sequence: int = Field(
        1, ge=1, le=64, description="Random windows drawn from each training sequence per epoch."
    )
    epochs: int = Field(
        60, ge=1, description="Maximum number of epochs (cached mode: an epoch costs only the small head)."
    )
    batch_size: int = Field(16, ge=1, description="Windows per batch (per process under torchrun).")
    lr: float = Field(1e-3, gt=0.0, description="AdamW peak learning rate.")
    weight_decay: float = Field(
        0.05, ge=0.0, description="AdamW weight decay: regularises a head trained on few sequences."
    )
    scheduler: Literal["cosine", "plateau", "none"] = Field(
        "cosine",
        description="Learning-rate schedule: 'cosine' (linear warm-up, then cosine decay to 1% over `epochs`), "
        "'plateau' (ReduceLROnPlateau on the monitored metric) or 'none'.",
    )
    warmup_epochs: int = Field(2, ge=0, description="Epochs of linear learning-rate warm-up (cosine schedule).")
    plateau_patience: int = Field(3, ge=0, description="Epochs without improvement before the LR is cut (plateau).")
    plateau_factor: float = Field(0.5, gt=0.0, lt=1.0, description="Factor the plateau scheduler cuts the LR by.")
    early_stopping: int = Field(
        15,
        ge=0,
        description="Stop after this many epochs without improvement of the monitored metric (0 = never); "
        "small validation sets change in coarse steps, so this is generous.",
    )
    monitor: Literal["macro_f1", "balanced_accuracy", "accuracy", "loss"] = Field(
        "macro_f1",
        description="Validation figure that picks the best checkpoint, drives early stopping and the plateau "
        "schedule. 'macro_f1' and 'balanced_accuracy' weigh every class equally, so a model answering the "
        "majority class scores low; 'accuracy' does not (use it for balanced data only); an equal figure "
        "with a lower validation loss also counts as an improvement.",
    )
    class_weighting: Literal["balanced", "sqrt", "none"] = Field(
        "balanced", description="Loss weights per class from training counts: N/(C*n_c), its square root, or none."
    )
    feature_dropout: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Share of the frozen encoder's feature channels dropped at the head's input while "
        "training, the same channels on every frame of a window (cached and frozen modes): a regulariser "
        "against memorising the people of few sequences (0 = off).",
    )
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0, description="Cross-entropy label smoothing.")
    grad_clip: float = Field(1.0, ge=0.0, description="Clip the gradient norm to this value (0 = off).")
    augment: AugmentConfig = Field(default_factory=AugmentConfig, description="Pixel augmentation.")
    amp: bool = Field(True, description="Mixed precision (torch.autocast float16) when training on a GPU.")
    device: str = Field("auto", description="'auto' (GPU when available), 'cpu', 'cuda' or 'cuda:N'.")
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes (0 = in the main process).")
    encode_batch_size: int = Field(128, ge=1, description="Crops per encoder call when caching features.")
    cache_dir: Path | None = Field(None, description="Feature cache folder; default DATASET_DIR/.feature_cache.")
    shuffle_frames: bool = Field(
        False,
        description="Diagnostic control: shuffle the frames inside every window (train and eval), which "
        "destroys temporal order; accuracy should then drop to what single frames allow.",
    )
    seed: int = Field(0, description="Seed of weights, window sampling and data order.")
    tensorboard: bool = Field(True, description="Write TensorBoard logs to RUN/tensorboard.")

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        from actwatch.model.networks import recognizer_class  # torch: only when a config is checked

        if self.mode == "cached" and not recognizer_class(self.model.arch).supports_feature_cache:
            raise ValueError(
                f"mode 'cached' needs a per-frame encoder; {self.model.arch} mixes time and space from its "
                "first layer, so use mode 'finetune' (or 'frozen') with it"
            )
        return self


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def describe(exc: ValidationError) -> str:
    """The problems of ``exc`` on one line, by the package's one formatter (``actwatch.settings``)."""
    return "; ".join(validation_problems(exc))


def load_train_config(path: Path | None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """``TrainConfig`` from a YAML (or JSON) file (optional) with ``overrides`` (flags) merged on top.

    The file is read by the package's one strict YAML reader (duplicate keys are refused) and errors
    come from its one formatter (:mod:`actwatch.settings`): a :class:`ConfigError` naming the file and
    each bad key.
    """
    data: dict[str, Any] = read_yaml(path) if path is not None else {}
    data = _merge(data, {k: v for k, v in (overrides or {}).items() if v is not None})
    source = f"{path} + options" if path is not None else "options"
    return validate_settings(TrainConfig, data, source)
