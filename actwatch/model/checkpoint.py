"""Model checkpoints: one file with the weights and everything needed to use them.

A checkpoint holds a format marker and version, the :class:`ModelConfig`, the class names, the
:class:`InputSpec` (window length, crop size, sampling rate, normalisation), free-form training metadata
and the weights. It is written with ``torch.save`` from plain types only and read back with
``torch.load(weights_only=True)``, so loading never runs code from the file. Loading checks everything
and raises :class:`~actwatch.errors.CheckpointError` with what is wrong and what to do.

Example:
    >>> import tempfile, pathlib
    >>> ckpt = init_checkpoint(["walking", "fighting"], ModelConfig(hidden_size=16, fc_size=8, pretrained=False))
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.pt"
    >>> save_checkpoint(ckpt, path)
    >>> load_checkpoint(path).classes
    ('walking', 'fighting')
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError
from torch import nn

from actwatch.errors import CheckpointError
from actwatch.fileio import atomic_path
from actwatch.model.config import InputSpec, ModelConfig, describe_validation_error
from actwatch.model.networks import build_model, calibrate_batchnorm
from actwatch.model.preprocess import preprocess_crops
from actwatch.model.recognizer import Recognizer

CHECKPOINT_FORMAT = "actwatch-checkpoint"
CHECKPOINT_VERSION = 1
_REQUIRED_KEYS = ("format", "version", "model_config", "classes", "input_spec", "metadata", "state_dict")


def validate_classes(classes: Sequence[str]) -> tuple[str, ...]:
    """The class names as a tuple; raises CheckpointError unless non-empty, unique and non-blank."""
    if isinstance(classes, str) or not isinstance(classes, Sequence):
        raise CheckpointError(f"classes must be a list of names, got {type(classes).__name__}")
    names = tuple(classes)
    if not names:
        raise CheckpointError("classes is empty; give at least one class name, e.g. walking,fighting")
    bad = [n for n in names if not isinstance(n, str) or not n.strip() or n != n.strip()]
    if bad:
        raise CheckpointError(f"class names must be non-blank strings without surrounding spaces, got {bad!r}")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise CheckpointError(f"class names must be unique; repeated: {duplicates}")
    return names


def _check_plain(value: Any, where: str) -> None:
    """Metadata must be plain data so that ``torch.load(weights_only=True)`` can read it back."""
    if value is None or isinstance(value, str | int | float | bool):
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise CheckpointError(f"metadata key {where}[{key!r}] must be a string")
            _check_plain(item, f"{where}[{key!r}]")
        return
    raise CheckpointError(
        f"metadata {where} is a {type(value).__name__}; only str, int, float, bool, None, lists and dicts "
        "can be stored (convert it first, e.g. str(path) or float(x))"
    )


@dataclass(frozen=True, eq=False)
class Checkpoint:
    """Weights + model config + class names + input spec + training metadata.

    ``classes`` is normalised to a tuple and validated. ``build_model()`` returns the network with
    these weights, in eval mode.

    Example:
        >>> ckpt = init_checkpoint(["a", "b"], ModelConfig(hidden_size=8, fc_size=4, pretrained=False))
        >>> ckpt.build_model().training
        False
    """

    model_config: ModelConfig
    classes: tuple[str, ...]
    input: InputSpec
    metadata: dict[str, Any] = field(default_factory=dict)
    state_dict: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", validate_classes(self.classes))
        _check_plain(self.metadata, "metadata")
        bad = [k for k, v in self.state_dict.items() if not isinstance(v, torch.Tensor)]
        if bad:
            raise CheckpointError(f"state_dict entries must be tensors; not tensors: {bad[:3]}")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @classmethod
    def from_model(
        cls,
        model: nn.Module,
        classes: Sequence[str],
        model_config: ModelConfig,
        input_spec: InputSpec,
        metadata: Mapping[str, Any] | None = None,
    ) -> Checkpoint:
        """A checkpoint of ``model``'s current weights (copied to CPU)."""
        state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        return cls(model_config, tuple(classes), input_spec, dict(metadata or {}), state)

    def build_model(self) -> Recognizer:
        """The network with this checkpoint's weights, in eval mode."""
        model = build_model(self.model_config, self.num_classes, init_weights=False)
        try:
            model.load_state_dict(self.state_dict, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"checkpoint weights do not match its model config: {exc}") from exc
        return model.eval()


def init_model(classes: Sequence[str], model_config: ModelConfig, input_spec: InputSpec) -> Recognizer:
    """An untrained network: pretrained backbone when available (see ModelConfig), random head.

    Pretrained weights keep their own BatchNorm statistics. Only a random backbone (no weights
    available, or ``pretrained: false``) gets statistics from random crops (see ``calibrate_batchnorm``):
    with identity statistics its features would be degenerate, the same for every input. Training starts
    from this network itself (built once); :func:`init_checkpoint` stores it.

    Example:
        >>> model = init_model(["a", "b"], ModelConfig(hidden_size=8, fc_size=4, pretrained=False), InputSpec())
        >>> model.backbone_source, model.training
        ('random', True)
    """
    model = build_model(model_config, len(validate_classes(classes)))
    if model.backbone_source == "random":
        # Random crops through the real preprocessing, so the statistics match what the model will see.
        rng = np.random.default_rng(0)
        height, width = input_spec.input_size
        crops = rng.integers(0, 256, (2 * input_spec.seq_len, height, width, 3), dtype=np.uint8)
        frames = torch.from_numpy(preprocess_crops(crops, input_spec)).reshape(2, input_spec.seq_len, 3, height, width)
        calibrate_batchnorm(model, frames)
    return model


def backbone_metadata(model: Recognizer) -> dict[str, Any]:
    """Which weights ``model``'s backbone started from: the file (or ``"random"``) and its sha256.

    Example:
        >>> model = init_model(["a"], ModelConfig(hidden_size=8, fc_size=4, pretrained=False), InputSpec())
        >>> backbone_metadata(model)
        {'backbone': 'random', 'backbone_sha256': None}
    """
    return {"backbone": model.backbone_source, "backbone_sha256": model.backbone_sha256}


def init_metadata(model: Recognizer) -> dict[str, Any]:
    """The metadata of an untrained checkpoint of ``model`` (where its backbone came from)."""
    calibrated = model.backbone_source == "random"
    return {"trained": False, **backbone_metadata(model), "batchnorm_calibrated_on_noise": calibrated}


def init_checkpoint(
    classes: Sequence[str],
    model_config: ModelConfig | None = None,
    input_spec: InputSpec | None = None,
) -> Checkpoint:
    """An untrained checkpoint of :func:`init_model`'s network.

    Without ``input_spec``, the defaults of :meth:`InputSpec.for_arch` are used (ImageNet normalisation
    for MobileNetV2, Kinetics-400 for R3D-18).
    """
    names = validate_classes(classes)
    cfg = model_config or ModelConfig()
    spec = input_spec or InputSpec.for_arch(cfg.arch)
    model = init_model(names, cfg, spec)
    return Checkpoint.from_model(model, names, cfg, spec, init_metadata(model))


def save_checkpoint(ckpt: Checkpoint, path: str | Path) -> None:
    """Write ``ckpt`` to ``path`` atomically (a temporary file in the same folder, then a rename)."""
    path = Path(path)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model_config": ckpt.model_config.model_dump(mode="json"),
        "classes": list(ckpt.classes),
        "input_spec": ckpt.input.model_dump(mode="json"),
        "metadata": ckpt.metadata,
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in ckpt.state_dict.items()},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _read(path: Path) -> Any:
    """torch.load with every way a file can fail turned into a CheckpointError that says which."""
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} not found; create one with `actwatch init-model` or `actwatch train`")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is not a file; give the path of a .pt checkpoint")
    with path.open("rb") as fh:
        head = fh.read(4)
    if head != b"PK\x03\x04":  # torch.save writes a zip archive
        raise CheckpointError(
            f"{path} is not a PyTorch checkpoint (it is not a torch.save zip archive); "
            "give a file written by `actwatch init-model` or `actwatch train`"
        )
    if not zipfile.is_zipfile(path):  # the zip index is at the end, so a cut-off copy loses it
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt (incomplete archive); copy or save it again")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refuses arbitrary classes: a YOLO / ultralytics .pt or a pickled nn.Module.
        reason = str(exc).strip().splitlines()[-1][:200]
        raise CheckpointError(
            f"{path} is a torch file but not an actwatch checkpoint: it stores Python objects that a safe "
            f"load refuses (e.g. a YOLO detector or a whole pickled model; {reason}). Give a checkpoint "
            "written by `actwatch init-model` or `actwatch train`"
        ) from exc
    except Exception as exc:  # torch raises RuntimeError/EOFError/... for damaged archives
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({type(exc).__name__}: {str(exc)[:200]}); "
            "it is probably truncated or corrupt: copy or save it again"
        ) from exc


def _check_weights(path: Path, cfg: ModelConfig, num_classes: int, state: Mapping[str, Any]) -> None:
    """Compare names and shapes with the network the config describes, built on the meta device (free)."""
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"checkpoint {path}: state_dict entries are not tensors: {bad[:3]!r}")
    with torch.device("meta"):
        expected = build_model(cfg, num_classes, init_weights=False).state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [
        f"{k}: {tuple(state[k].shape)} in the file, {tuple(v.shape)} for the config"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if shapes:
            parts.append(f"{len(shapes)} with other shapes (e.g. {shapes[0]})")
        raise CheckpointError(
            f"checkpoint {path}: weights do not match its model config ({cfg.arch}, {num_classes} classes): "
            + "; ".join(parts)
            + ". The file was edited or written by incompatible code; re-create it with `actwatch train`"
        )


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read and validate a checkpoint written by :func:`save_checkpoint`; CheckpointError otherwise."""
    path = Path(path)
    obj = _read(path)
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
        if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            kind = "a bare state_dict (weights only, without config and class names)"
        else:
            kind = f"a {type(obj).__name__} without the '{CHECKPOINT_FORMAT}' format marker"
        raise CheckpointError(
            f"{path} is not an actwatch checkpoint: it is {kind}. Give a checkpoint written by "
            "`actwatch init-model` or `actwatch train` (or wrap weights with actwatch.model.checkpoint.Checkpoint)"
        )
    missing = [k for k in _REQUIRED_KEYS if k not in obj]
    if missing:
        raise CheckpointError(f"checkpoint {path} is incomplete: missing {missing}; save it again")
    version = obj["version"]
    if not isinstance(version, int) or not 1 <= version <= CHECKPOINT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {version!r}; this actwatch reads versions "
            f"1..{CHECKPOINT_VERSION}: upgrade actwatch or re-create the checkpoint"
        )
    try:
        cfg = ModelConfig.model_validate(obj["model_config"])
        spec = InputSpec.model_validate(obj["input_spec"])
    except ValidationError as exc:
        raise CheckpointError(
            f"checkpoint {path} has an invalid model config or input spec ({describe_validation_error(exc)})"
        ) from exc
    try:
        classes = validate_classes(obj["classes"])
    except CheckpointError as exc:
        raise CheckpointError(f"checkpoint {path}: {exc}") from exc
    if not isinstance(obj["metadata"], dict) or not isinstance(obj["state_dict"], dict):
        raise CheckpointError(f"checkpoint {path}: 'metadata' and 'state_dict' must be dicts")
    _check_weights(path, cfg, len(classes), obj["state_dict"])
    return Checkpoint(cfg, classes, spec, obj["metadata"], obj["state_dict"])
