"""Classification metrics and their pictures: accuracy, top-k, per-class P/R/F1, confusion matrix.

Example:
    >>> probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    >>> m = classification_metrics(probs, np.array([0, 1, 1]), ["a", "b"])
    >>> round(m.accuracy, 3), m.confusion.tolist()
    (0.667, [[1, 0], [1, 1]])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ClassificationMetrics:
    """Metrics of one evaluation; ``to_dict()`` is what ``results.json``/``metrics.json`` store.

    Example:
        >>> m = metrics_from_confusion(np.array([[3, 1], [0, 4]]), ["a", "b"])
        >>> m.accuracy, round(m.macro_f1, 3)
        (0.875, 0.873)
    """

    classes: tuple[str, ...]
    accuracy: float
    top_k: int
    top_k_accuracy: float
    precision: np.ndarray  # (C,)
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray
    confusion: np.ndarray  # (C, C), rows: true class, columns: predicted
    loss: float | None = None

    @property
    def macro_f1(self) -> float:
        present = self.support > 0
        return float(self.f1[present].mean()) if present.any() else 0.0

    @property
    def count(self) -> int:
        return int(self.support.sum())

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "accuracy": self.accuracy,
            f"top{self.top_k}_accuracy": self.top_k_accuracy,
            "macro_f1": self.macro_f1,
            "loss": self.loss,
            "per_class": {
                c: {
                    "precision": float(self.precision[i]),
                    "recall": float(self.recall[i]),
                    "f1": float(self.f1[i]),
                    "support": int(self.support[i]),
                }
                for i, c in enumerate(self.classes)
            },
            "confusion_matrix": self.confusion.tolist(),
        }


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    cm = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(cm, (np.asarray(labels, np.int64), np.asarray(preds, np.int64)), 1)
    return cm


def metrics_from_confusion(
    cm: np.ndarray,
    classes: Sequence[str],
    *,
    top_k: int = 1,
    top_k_correct: int | None = None,
    loss: float | None = None,
) -> ClassificationMetrics:
    """Metrics from a confusion matrix (summed across processes under DDP) and a top-k hit count."""
    cm = np.asarray(cm, np.int64)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / np.maximum(predicted, 1), 0.0)
        recall = np.where(support > 0, tp / np.maximum(support, 1), 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    total = int(support.sum())
    accuracy = float(tp.sum() / total) if total else 0.0
    hits = top_k_correct if top_k_correct is not None else int(tp.sum())
    return ClassificationMetrics(
        classes=tuple(classes),
        accuracy=accuracy,
        top_k=top_k,
        top_k_accuracy=float(hits / total) if total else 0.0,
        precision=precision,
        recall=recall,
        f1=f1,
        support=support,
        confusion=cm,
        loss=loss,
    )


def top_k_hits(scores: np.ndarray, labels: np.ndarray, k: int) -> int:
    """How many rows have their label among the ``k`` highest scores."""
    if len(labels) == 0:
        return 0
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return int((top == np.asarray(labels)[:, None]).any(axis=1).sum())


def classification_metrics(
    scores: np.ndarray, labels: np.ndarray, classes: Sequence[str], loss: float | None = None
) -> ClassificationMetrics:
    """Metrics of class scores (probabilities or logits) ``(N, C)`` against integer ``labels``."""
    scores = np.asarray(scores)
    labels = np.asarray(labels, np.int64)
    k = min(5, len(classes))
    cm = confusion_matrix(labels, scores.argmax(axis=1), len(classes))
    return metrics_from_confusion(cm, classes, top_k=k, top_k_correct=top_k_hits(scores, labels, k), loss=loss)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, safe in threads and on servers
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(cm: np.ndarray, classes: Sequence[str], path: Path, title: str = "Confusion matrix") -> Path:
    """Row-normalised confusion matrix with the counts written in the cells."""
    plt = _pyplot()
    n = len(classes)
    size = max(4.0, 0.6 * n + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, np.maximum(rows, 1))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), classes, rotation=45, ha="right")
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_curves(history: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """``loss.png`` and ``accuracy.png`` (train and validation per epoch)."""
    plt = _pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    epochs = [h["epoch"] for h in history]
    paths = []
    for metric in ("loss", "accuracy"):
        fig, ax = plt.subplots(figsize=(6, 4))
        for split in ("train", "val"):
            values = [h.get(f"{split}_{metric}") for h in history]
            if any(v is not None for v in values):
                ax.plot(epochs, [np.nan if v is None else v for v in values], marker="o", label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = out_dir / f"{metric}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def markdown_report(
    metrics: ClassificationMetrics, *, title: str, details: dict[str, Any], images: Sequence[str]
) -> str:
    """A Markdown report: summary, per-class table, confusion matrix (table and image links)."""
    lines = [f"# {title}", ""]
    for key, value in details.items():
        lines.append(f"- **{key}**: {value}")
    lines += [
        f"- **windows**: {metrics.count}",
        f"- **top-1 accuracy**: {metrics.accuracy:.4f}",
        f"- **top-{metrics.top_k} accuracy**: {metrics.top_k_accuracy:.4f}",
        f"- **macro F1**: {metrics.macro_f1:.4f}",
        "",
        "## Per class",
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---:|---:|---:|---:|",
    ]
    for i, c in enumerate(metrics.classes):
        lines.append(
            f"| {c} | {metrics.precision[i]:.4f} | {metrics.recall[i]:.4f} | {metrics.f1[i]:.4f} | "
            f"{int(metrics.support[i])} |"
        )
    lines += ["", "## Confusion matrix (rows: true, columns: predicted)", ""]
    lines.append("| true \\ predicted | " + " | ".join(metrics.classes) + " |")
    lines.append("|---|" + "---:|" * len(metrics.classes))
    for i, c in enumerate(metrics.classes):
        lines.append(f"| {c} | " + " | ".join(str(int(v)) for v in metrics.confusion[i]) + " |")
    lines.append("")
    lines += [f"![{Path(img).stem}]({img})" for img in images]
    return "\n".join(lines) + "\n"
