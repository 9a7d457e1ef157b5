"""``Recognizer``: the one interface training, evaluation and export use to talk to an action network.

Whether a network is split into a per-frame encoder and a temporal head is asked in one way only:
``supports_feature_cache`` of its :class:`Recognizer` class (:func:`recognizer_class` answers it for an
``arch`` before any network is built). The exported ``manifest.json`` copies it as ``split`` at export
time, and that is what the serve-time runtime reads.

The interface is an abstract :class:`torch.nn.Module` rather than a ``typing.Protocol``: every
recognizer is also a module (``to``, ``state_dict``, ``train``...), which a protocol cannot express.

Example:
    >>> import torch
    >>> from actwatch.model.config import ModelConfig
    >>> from actwatch.model.networks import build_model
    >>> model = build_model(ModelConfig(hidden_size=8, fc_size=4, pretrained=False), num_classes=2)
    >>> model.supports_feature_cache
    True
    >>> model.encode_frames(torch.zeros(1, 3, 3, 32, 32)).shape   # (B, T) leading axes are kept
    torch.Size([1, 3, 1280])
    >>> model.freeze_backbone()
    >>> model.trainable_module() is model.feature_head()          # only the head learns
    True
    >>> _ = model.train()
    >>> model.frame_encoder().training                            # frozen BatchNorm statistics
    False
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import nn


class Recognizer(nn.Module, ABC):
    """An action network: ``(B, T, 3, H, W)`` normalised frames -> ``(B, C)`` logits.

    Split networks (``supports_feature_cache``) also offer their two halves: :meth:`frame_encoder`
    maps ``(N, 3, H, W)`` to ``(N, D)`` and :meth:`feature_head` maps ``(B, T, D)`` to logits.
    ``backbone_source`` says where the backbone's initial weights came from (a file, or ``"random"``),
    ``backbone_sha256`` that file's sha256 (None for random).
    """

    supports_feature_cache: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        self.backbone_source = "random"
        self.backbone_sha256: str | None = None
        self._backbone_frozen = False

    @abstractmethod
    def backbone_parts(self) -> list[nn.Module]:
        """The modules :meth:`freeze_backbone` freezes (everything but the layers sized to the classes)."""

    @property
    def backbone_frozen(self) -> bool:
        return self._backbone_frozen

    def freeze_backbone(self) -> None:
        """Stop the backbone learning: no gradients, and BatchNorm statistics kept even in ``train()``."""
        for part in self.backbone_parts():
            part.requires_grad_(False)
        self._backbone_frozen = True
        self.train(self.training)

    def train(self, mode: bool = True) -> Recognizer:
        super().train(mode)
        if self._backbone_frozen:
            for part in self.backbone_parts():
                part.eval()
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters an optimiser should update."""
        return [p for p in self.parameters() if p.requires_grad]

    def trainable_module(self) -> nn.Module:
        """The smallest module holding every trainable parameter (what DistributedDataParallel wraps).

        The feature head of a split network whose backbone is frozen (it takes ``(B, T, D)`` features,
        see :attr:`takes_features`); the whole network otherwise (it takes frames).
        """
        return self.feature_head() if self.takes_features else self

    @property
    def takes_features(self) -> bool:
        """Whether :meth:`trainable_module` takes encoder features rather than frames."""
        return self.supports_feature_cache and self._backbone_frozen

    def frame_encoder(self) -> nn.Module:
        """The per-frame encoder ``(N, 3, H, W) -> (N, D)`` of a split network."""
        raise TypeError(f"{type(self).__name__} has no per-frame encoder (supports_feature_cache is False)")

    def feature_head(self) -> nn.Module:
        """The temporal head ``(B, T, D) -> (B, C)`` of a split network."""
        raise TypeError(f"{type(self).__name__} has no feature head (supports_feature_cache is False)")

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Features of frames ``(..., 3, H, W)`` -> ``(..., D)`` (any leading axes, e.g. ``(B, T)``)."""
        lead = frames.shape[:-3]
        features = self.frame_encoder()(frames.reshape(-1, *frames.shape[-3:]))
        return features.reshape(*lead, -1)

    def classify_features(self, features: torch.Tensor) -> torch.Tensor:
        """Logits of windows of encoder features ``(B, T, D)`` -> ``(B, C)``."""
        return self.feature_head()(features)
