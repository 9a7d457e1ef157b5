"""``actwatch evaluate``: a checkpoint on one split of a dataset -> Markdown report + PNG + JSON.

One centred window per sequence (as in validation during training). Models with a per-frame encoder
are evaluated the way the service runs them: every crop encoded once, the temporal head on windows of
features (the training feature cache is reused when its key matches the checkpoint's encoder).

The windows go through :func:`actwatch.train.loop.evaluate`, the same pass training validates with.

Example:
    >>> import tempfile
    >>> from actwatch.model.checkpoint import init_checkpoint, save_checkpoint
    >>> from actwatch.model.config import InputSpec, ModelConfig
    >>> from actwatch.train.synthetic import write_motion_dataset
    >>> root = Path(tempfile.mkdtemp())
    >>> ds = write_motion_dataset(root / "ds", videos_per_class=2, n_frames=8, size=32, val_ratio=0, test_ratio=0.5)
    >>> model = ModelConfig(pretrained=False, hidden_size=8, fc_size=4)
    >>> ckpt = init_checkpoint(ds.classes, model, InputSpec(seq_len=4, input_size=32))
    >>> save_checkpoint(ckpt, root / "run" / "checkpoints" / "best.pt")
    >>> res = evaluate_checkpoint(root / "run" / "checkpoints" / "best.pt", ds.root)
    >>> res.probabilities.shape, res.report.relative_to(root).as_posix()
    ((2, 2), 'run/eval_best_test/report.md')
"""

from __future__ import annotations

import csv
import itertools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from actwatch.errors import DatasetError
from actwatch.fileio import atomic_write_json, atomic_write_text
from actwatch.model.checkpoint import load_checkpoint
from actwatch.train.dataset import load_dataset
from actwatch.train.distributed import resolve_device
from actwatch.train.features import FeatureCache, encode_records, feature_dim
from actwatch.train.loop import WindowClassifier, evaluate
from actwatch.train.metrics import ClassificationMetrics, markdown_report, plot_confusion
from actwatch.train.windows import FeatureWindows, PixelWindows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalResult:
    """Metrics plus the per-window probabilities behind them (rows follow ``seq_ids``)."""

    metrics: ClassificationMetrics
    probabilities: np.ndarray  # (N, C) softmax of the checkpoint's classes
    labels: np.ndarray  # (N,) index into the checkpoint's classes
    seq_ids: list[str]
    out_dir: Path
    report: Path


def default_report_dir(checkpoint: Path, split: str) -> Path:
    """``RUN/eval_<stem>_<split>`` for ``RUN/checkpoints/<stem>.pt``, else beside the checkpoint."""
    parent = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
    return parent / f"eval_{checkpoint.stem}_{split}"


@torch.no_grad()
def evaluate_checkpoint(
    checkpoint: Path,
    data_dir: Path,
    *,
    split: str = "test",
    out_dir: Path | None = None,
    batch_size: int = 32,
    device: str = "auto",
    short_policy: Literal["loop", "pad"] | None = None,
    cache_dir: Path | None = None,
    progress: bool = False,
) -> EvalResult:
    """Evaluate ``checkpoint`` on ``split`` of the dataset in ``data_dir`` and write the report."""
    ckpt = load_checkpoint(checkpoint)
    dataset = load_dataset(data_dir)
    records = dataset.split(split)
    if not records:
        have = sorted({r.split for r in dataset.sequences})
        raise DatasetError(f"{data_dir} has no {split!r} sequences (splits present: {have}); choose --split")
    classes = list(ckpt.classes)
    unknown = sorted({r.label for r in records} - set(classes))
    if unknown:
        raise DatasetError(f"the checkpoint does not know the dataset's classes {unknown} (it has {classes})")
    spec = ckpt.input
    if tuple(dataset.input_size) != tuple(spec.input_size):
        log.warning("dataset crops are %s, the model takes %s: crops are resized", dataset.input_size, spec.input_size)
    if abs(dataset.fps - spec.fps) > 1e-6:
        log.warning("dataset sampled at %g fps, the model expects %g fps", dataset.fps, spec.fps)
    policy = short_policy or ckpt.metadata.get("short_policy", "loop")
    if policy not in ("loop", "pad"):
        policy = "loop"
    dev = resolve_device(device)
    model = ckpt.build_model().to(dev)
    labels = np.array([classes.index(r.label) for r in records], np.int64)

    windows: Dataset[Any]
    if model.supports_feature_cache:
        encoder = model.frame_encoder()
        cache = FeatureCache.find(dataset, encoder, spec, cache_dir or dataset.root / ".feature_cache")
        if cache is not None:
            feats = [cache.features(r.seq_id) for r in records]
        else:
            array = np.empty((sum(r.frames for r in records), feature_dim(encoder, spec, dev)), np.float32)
            encode_records(dataset, records, encoder, spec, array, device=dev, progress=progress)
            bounds = np.cumsum([0] + [r.frames for r in records])
            feats = [array[a:b] for a, b in itertools.pairwise(bounds)]
        windows = FeatureWindows(feats, labels.tolist(), spec.seq_len, train=False, short_policy=policy)
    else:
        windows = PixelWindows(dataset, records, spec, train=False, short_policy=policy)
    classifier = WindowClassifier(model, features_in=model.supports_feature_cache)
    loader = DataLoader(windows, batch_size=batch_size, shuffle=False)
    result = evaluate(classifier, loader, dev, classes, keep_probabilities=True)
    metrics, probabilities = result.metrics, result.probabilities
    assert probabilities is not None

    out = out_dir or default_report_dir(checkpoint, split)
    out.mkdir(parents=True, exist_ok=True)
    plot_confusion(metrics.confusion, classes, out / "confusion_matrix.png", f"{split} confusion matrix")
    atomic_write_json(out / "metrics.json", {"checkpoint": str(checkpoint), "split": split, **metrics.to_dict()})
    with (out / "predictions.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["seq_id", "label", "predicted", *classes])
        for sid, y, p in zip([r.seq_id for r in records], labels, probabilities, strict=True):
            w.writerow([sid, classes[y], classes[int(p.argmax())], *(f"{v:.6f}" for v in p)])
    details = {
        "checkpoint": str(checkpoint),
        "dataset": str(dataset.root),
        "split": f"{split} ({len(records)} sequences, one centred window of {spec.seq_len} each)",
        "model": f"{ckpt.model_config.arch} / {ckpt.model_config.temporal}",
    }
    report = out / "report.md"
    text = markdown_report(metrics, title=f"Evaluation on {split}", details=details, images=["confusion_matrix.png"])
    atomic_write_text(report, text)
    return EvalResult(metrics, probabilities, labels, [r.seq_id for r in records], out, report)
