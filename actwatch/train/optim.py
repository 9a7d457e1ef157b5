"""What drives a training run: the optimiser and its schedule, and which epoch counts as the best.

Example:
    >>> [round(warmup_cosine(e, warmup=1, epochs=4), 3) for e in range(4)]
    [0.5, 1.0, 0.505, 0.01]
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
from torch import nn

from actwatch.train.config import TrainConfig
from actwatch.train.metrics import ClassificationMetrics


def make_optimizer(params: list[nn.Parameter], cfg: TrainConfig) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW over ``params`` and the learning-rate scheduler ``cfg`` asks for (or None)."""
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler: Any = None
    if cfg.scheduler == "plateau":
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer,
            mode="min" if cfg.monitor == "loss" else "max",
            factor=cfg.plateau_factor,
            patience=cfg.plateau_patience,
        )
    elif cfg.scheduler == "cosine":
        scale = functools.partial(warmup_cosine, warmup=cfg.warmup_epochs, epochs=cfg.epochs)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, scale)
    return optimizer, scheduler


def warmup_cosine(epoch: int, *, warmup: int, epochs: int, floor: float = 0.01) -> float:
    """Learning-rate factor of ``epoch`` (0-based): linear warm-up, then cosine decay to ``floor``.

    Example:
        >>> [round(warmup_cosine(e, warmup=2, epochs=6), 3) for e in range(6)]
        [0.333, 0.667, 1.0, 0.752, 0.258, 0.01]
    """
    if epoch < warmup:
        return (epoch + 1) / (warmup + 1)
    span = max(1, epochs - warmup - 1)
    progress = min(1.0, (epoch - warmup) / span)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def monitored_value(metrics: ClassificationMetrics, monitor: str) -> float:
    """The figure ``monitor`` names (``TrainConfig.monitor``) of a validation pass.

    Example:
        >>> import numpy as np
        >>> from actwatch.train.metrics import metrics_from_confusion
        >>> m = metrics_from_confusion(np.array([[5, 0], [1, 0]]), ["a", "b"], loss=0.7)
        >>> [round(monitored_value(m, k), 3) for k in ("accuracy", "macro_f1", "balanced_accuracy", "loss")]
        [0.833, 0.455, 0.5, 0.7]
    """
    if monitor == "loss":
        return metrics.loss if metrics.loss is not None else math.inf
    return {
        "accuracy": metrics.accuracy,
        "macro_f1": metrics.macro_f1,
        "balanced_accuracy": metrics.balanced_accuracy,
    }[monitor]


def is_improvement(value: float, loss: float, best_value: float, best_loss: float, tol: float = 1e-9) -> bool:
    """Whether an epoch beats the best so far: a higher (signed) monitored value, or an equal one with a
    lower validation loss.

    The tie-breaker matters on small data: a handful of validation windows gives the same accuracy or
    F1 for many epochs while the model still learns, and without it the first of those epochs (often
    one that answers the majority class for everything) would stay the best checkpoint.

    Example:
        >>> is_improvement(0.5, 0.60, best_value=0.5, best_loss=0.69), is_improvement(0.5, 0.7, 0.5, 0.69)
        (True, False)
        >>> is_improvement(0.6, 0.9, best_value=0.5, best_loss=0.69)
        True
    """
    if value > best_value + tol:
        return True
    return abs(value - best_value) <= tol and loss < best_loss - tol
