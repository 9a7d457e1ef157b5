"""One epoch of training and one evaluation pass, as plain functions (after torchvision's references).

Every collaborator is an argument: the module mapping a batch to logits (:class:`WindowClassifier`),
the loss, the optimiser, the loader, the device. ``reduce`` sums counts across processes under
``torchrun`` (:meth:`actwatch.train.distributed.DistContext.all_reduce_sum`); alone it is the identity.
:func:`actwatch.train.trainer.train` and :func:`actwatch.train.evaluate.evaluate_checkpoint` both
evaluate with :func:`evaluate`.

Example:
    >>> import torch
    >>> from actwatch.model.config import ModelConfig
    >>> from actwatch.model.networks import build_model
    >>> model = build_model(ModelConfig(hidden_size=8, fc_size=4, pretrained=False), num_classes=2)
    >>> model.freeze_backbone()
    >>> net = WindowClassifier(model, features_in=True)     # cached features -> the head
    >>> data = [(torch.randn(4, 3, 1280), torch.tensor([0, 1, 0, 1]))]
    >>> optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=1e-3)
    >>> stats = train_one_epoch(net, torch.nn.CrossEntropyLoss(), optimizer, data, torch.device("cpu"))
    >>> stats.samples
    4
    >>> evaluate(net, data, torch.device("cpu"), ["a", "b"]).metrics.count
    4
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from actwatch.model.recognizer import Recognizer
from actwatch.train.metrics import ClassificationMetrics, metrics_from_confusion, top_k_hits

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]
Reduce = Callable[[np.ndarray], np.ndarray]


def _alone(values: np.ndarray) -> np.ndarray:
    return values


class WindowClassifier(nn.Module):
    """A batch of windows -> logits, for what the batches hold and what trains.

    ``features_in``: batches hold encoder features (cached mode, or evaluation on a feature cache),
    which go to the feature head. Otherwise they hold frames: a split network with a frozen backbone
    encodes them without gradients first, any other network takes them whole. ``net`` is the module
    that trains (:meth:`Recognizer.trainable_module`, possibly wrapped in DistributedDataParallel).

    ``feature_dropout``: while training, drop this share of the head's input feature channels, the
    same channels on every frame of a window (scaled as ``nn.Dropout`` does), so that how features
    change over time survives while no single channel (what a person looks like) can be relied on; a
    head on few sequences of frozen features otherwise memorises the people instead of the action.
    Not applied in evaluation, nor when the whole network trains.
    """

    def __init__(
        self,
        recognizer: Recognizer,
        *,
        features_in: bool,
        net: nn.Module | None = None,
        feature_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.recognizer = recognizer
        self.encode_first = recognizer.takes_features and not features_in
        head_only = features_in or self.encode_first
        self.net = net if net is not None else (recognizer.feature_head() if head_only else recognizer)
        self.feature_dropout = feature_dropout if head_only else 0.0

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        if self.encode_first:
            with torch.no_grad():
                batch = self.recognizer.encode_frames(batch)
        if self.training and self.feature_dropout > 0 and batch.ndim == 3:  # (B, T, D): one mask per window
            keep = 1.0 - self.feature_dropout
            mask = torch.bernoulli(torch.full((batch.shape[0], 1, batch.shape[2]), keep, device=batch.device))
            batch = batch * mask / keep
        return self.net(batch)


@dataclass(frozen=True)
class EpochStats:
    """Mean loss and accuracy of one training epoch over every process."""

    loss: float
    accuracy: float
    samples: int


@dataclass(frozen=True)
class Evaluation:
    """Metrics of one pass; ``probabilities`` ``(N, C)`` in loader order when asked for."""

    metrics: ClassificationMetrics
    probabilities: np.ndarray | None = None


@contextlib.contextmanager
def _autocast(device: torch.device, amp: bool) -> Iterator[None]:
    with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=amp):
        yield


def train_one_epoch(
    model: nn.Module,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: Batches,
    device: torch.device,
    *,
    epoch: int = 0,
    scaler: torch.amp.GradScaler | None = None,
    grad_clip: float = 0.0,
    amp: bool = False,
    reduce: Reduce = _alone,
    progress: bool = False,
) -> EpochStats:
    """One pass over ``loader`` updating ``optimizer``'s parameters (mixed precision with ``amp``)."""
    model.train()
    if scaler is None:
        scaler = torch.amp.GradScaler("cuda", enabled=False)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    sums = np.zeros(3)  # loss * n, correct, n
    bar = tqdm(loader, desc=f"epoch {epoch + 1}", unit="batch", leave=False, disable=not progress)
    for x, y in bar:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with _autocast(device, amp):
            logits = model(x)
            loss = criterion(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if grad_clip > 0:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(params, grad_clip)
        scaler.step(optimizer)
        scaler.update()
        n = len(y)
        sums += (loss.item() * n, (logits.argmax(1) == y).sum().item(), n)
        bar.set_postfix(loss=f"{sums[0] / sums[2]:.4f}")
    sums = reduce(sums)
    n = max(sums[2], 1)
    return EpochStats(float(sums[0] / n), float(sums[1] / n), int(sums[2]))


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Batches,
    device: torch.device,
    classes: Sequence[str],
    *,
    amp: bool = False,
    reduce: Reduce = _alone,
    keep_probabilities: bool = False,
) -> Evaluation:
    """Metrics (loss included) of ``model`` on ``loader``; with ``keep_probabilities`` also the softmax."""
    model.eval()
    c = len(classes)
    k = min(5, c)
    cm = np.zeros((c, c), np.float64)
    extra = np.zeros(2)  # loss sum, top-k hits
    kept: list[np.ndarray] = []
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        with _autocast(device, amp):
            logits = model(x).float()
        extra[0] += nn.functional.cross_entropy(logits, y, reduction="sum").item()
        scores, labels = logits.cpu().numpy(), y.cpu().numpy()
        np.add.at(cm, (labels, scores.argmax(1)), 1)
        extra[1] += top_k_hits(scores, labels, k)
        if keep_probabilities:
            kept.append(torch.softmax(logits, dim=1).cpu().numpy())
    total = reduce(np.concatenate([cm.ravel(), extra]))
    cm = total[: c * c].reshape(c, c).astype(np.int64)
    n = max(int(cm.sum()), 1)
    metrics = metrics_from_confusion(cm, classes, top_k=k, top_k_correct=int(total[-1]), loss=float(total[-2] / n))
    probabilities = (np.concatenate(kept) if kept else np.zeros((0, c), np.float32)) if keep_probabilities else None
    return Evaluation(metrics, probabilities)
