"""Classification metrics and their pictures: accuracy, top-k, per-class P/R/F1, confusion matrix.

Every figure stands beside what a model that learned nothing would score (:class:`Baseline`): always
answering the split's most frequent class (``majority``) and answering at random (``uniform``). A
class without support in the evaluated split is *not evaluable*: its precision, recall and F1 are
``None`` (not 0) and it is left out of macro-F1 and balanced accuracy.

Example:
    >>> probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    >>> m = classification_metrics(probs, np.array([0, 1, 1]), ["a", "b"])
    >>> round(m.accuracy, 3), m.confusion.tolist(), round(m.balanced_accuracy, 3)
    (0.667, [[1, 0], [1, 1]], 0.75)
    >>> [(b.name, round(b.accuracy, 3)) for b in m.baselines]
    [('majority', 0.667), ('uniform', 0.5)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

NOT_EVALUABLE = "not evaluable"
# A model must beat the best baseline by this much (macro-F1 and balanced accuracy) to count as learned.
BASELINE_MARGIN = 0.02


@dataclass(frozen=True)
class Baseline:
    """What a model that ignores its input scores on a split (expected values for ``uniform``).

    Example:
        >>> b = majority_baseline(np.array([10, 2, 0]))
        >>> b.label, round(b.accuracy, 3), b.balanced_accuracy, round(b.macro_f1, 3)
        (0, 0.833, 0.5, 0.455)
    """

    name: str  # "majority" or "uniform"
    accuracy: float
    balanced_accuracy: float
    macro_f1: float
    label: int | None = None  # the class the majority baseline always answers

    def to_dict(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            "balanced_accuracy": self.balanced_accuracy,
            "macro_f1": self.macro_f1,
        }


def majority_baseline(support: np.ndarray) -> Baseline:
    """Always answering the most frequent class of the split (the best any constant answer scores)."""
    support = np.asarray(support, np.float64)
    total, present = support.sum(), int((support > 0).sum())
    if total == 0:
        return Baseline("majority", 0.0, 0.0, 0.0)
    top = int(support.argmax())
    share = support[top] / total
    # That class: precision = share, recall = 1; every other class: recall 0, F1 0.
    return Baseline("majority", float(share), 1.0 / present, float(2 * share / (share + 1) / present), top)


def uniform_baseline(support: np.ndarray) -> Baseline:
    """Expected scores of answering one of the C classes at random, each with probability 1/C.

    Example:
        >>> b = uniform_baseline(np.array([5, 5]))
        >>> b.accuracy, b.balanced_accuracy, b.macro_f1
        (0.5, 0.5, 0.5)
    """
    support = np.asarray(support, np.float64)
    total, n = support.sum(), len(support)
    present = support > 0
    if total == 0 or n == 0:
        return Baseline("uniform", 0.0, 0.0, 0.0)
    share = support[present] / total
    f1 = 2 * share * (1.0 / n) / (share + 1.0 / n)  # precision = share, recall = 1/C
    return Baseline("uniform", 1.0 / n, 1.0 / n, float(f1.mean()))


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
    def evaluable(self) -> np.ndarray:
        """Classes with support in this split; the others are "not evaluable" (not 0)."""
        return np.asarray(self.support > 0)

    @property
    def macro_f1(self) -> float:
        present = self.evaluable
        return float(self.f1[present].mean()) if present.any() else 0.0

    @property
    def balanced_accuracy(self) -> float:
        """Mean recall over the evaluable classes: a constant answer scores 1 / (evaluable classes)."""
        present = self.evaluable
        return float(self.recall[present].mean()) if present.any() else 0.0

    @property
    def count(self) -> int:
        return int(self.support.sum())

    @property
    def baselines(self) -> tuple[Baseline, Baseline]:
        """The majority-class and uniform baselines of this split."""
        return majority_baseline(self.support), uniform_baseline(self.support)

    def baseline_warning(self, split: str = "test") -> str | None:
        """A warning (what happened, what to try) when the model is no better than a baseline, else None.

        Example:
            >>> m = metrics_from_confusion(np.array([[5, 0], [1, 0]]), ["walking", "cycling"])
            >>> m.baseline_warning("val").split(":")[0]
            'the model is no better than a baseline on val'
            >>> metrics_from_confusion(np.array([[5, 0], [0, 1]]), ["walking", "cycling"]).baseline_warning() is None
            True
        """
        if self.count == 0:
            return None
        best_f1 = max(b.macro_f1 for b in self.baselines)
        best_bal = max(b.balanced_accuracy for b in self.baselines)
        if self.macro_f1 > best_f1 + BASELINE_MARGIN and self.balanced_accuracy > best_bal + BASELINE_MARGIN:
            return None
        majority = self.baselines[0]
        return (
            f"the model is no better than a baseline on {split}: macro-F1 {self.macro_f1:.3f} (baseline "
            f"{best_f1:.3f}), balanced accuracy {self.balanced_accuracy:.3f} (baseline {best_bal:.3f}), "
            f"accuracy {self.accuracy:.3f} (always answering the majority class: {majority.accuracy:.3f}). "
            "Try: more epochs (--epochs) or a longer --early-stopping, more videos per class, a pretrained "
            "backbone (`actwatch assets`), and look at the dataset report and contact sheet of the dataset "
            "for classes that hold the wrong content"
        )

    def summary_line(self, split: str) -> str:
        """One line of the headline figures beside the baselines (see :func:`figures_line`)."""
        return figures_line(split, self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        def score(values: np.ndarray, i: int) -> float | None:
            return float(values[i]) if self.support[i] > 0 else None

        majority, uniform = self.baselines
        return {
            "count": self.count,
            "accuracy": self.accuracy,
            f"top{self.top_k}_accuracy": self.top_k_accuracy,
            "macro_f1": self.macro_f1,
            "balanced_accuracy": self.balanced_accuracy,
            "loss": self.loss,
            "baselines": {"majority": majority.to_dict(), "uniform": uniform.to_dict()},
            "beats_baseline": self.baseline_warning() is None,
            "per_class": {
                c: {
                    "precision": score(self.precision, i),
                    "recall": score(self.recall, i),
                    "f1": score(self.f1, i),
                    "support": int(self.support[i]),
                    "evaluable": bool(self.support[i] > 0),
                }
                for i, c in enumerate(self.classes)
            },
            "confusion_matrix": self.confusion.tolist(),
        }


def figures_line(split: str, figures: dict[str, Any]) -> str:
    """The headline figures of ``ClassificationMetrics.to_dict()`` beside their baselines, on one line
    (the train summary and ``actwatch evaluate`` print it).

    Example:
        >>> line = figures_line("test", metrics_from_confusion(np.array([[3, 1], [0, 4]]), ["a", "b"]).to_dict())
        >>> for part in line.split("), "):
        ...     print(part)
        test: 8 windows, accuracy 0.8750 (majority 0.5000, uniform 0.5000
        macro-F1 0.8730 (majority 0.3333
        balanced accuracy 0.8750 (majority 0.5000)
    """
    majority, uniform = figures["baselines"]["majority"], figures["baselines"]["uniform"]
    return (
        f"{split}: {figures['count']} windows, accuracy {figures['accuracy']:.4f} (majority "
        f"{majority['accuracy']:.4f}, uniform {uniform['accuracy']:.4f}), macro-F1 {figures['macro_f1']:.4f} "
        f"(majority {majority['macro_f1']:.4f}), balanced accuracy {figures['balanced_accuracy']:.4f} "
        f"(majority {majority['balanced_accuracy']:.4f})"
    )


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
    """A Markdown report: summary beside the baselines, per-class table, confusion matrix (table and images)."""
    lines = [f"# {title}", ""]
    warning = metrics.baseline_warning(str(details.get("split", "this split")).split(" ")[0])
    if warning is not None:
        lines += [f"> **Warning:** {warning}.", ""]
    for key, value in details.items():
        lines.append(f"- **{key}**: {value}")
    majority, uniform = metrics.baselines
    lines += [
        f"- **windows**: {metrics.count}",
        f"- **top-{metrics.top_k} accuracy**: {metrics.top_k_accuracy:.4f}",
        "",
        "| figure | model | majority-class baseline | uniform baseline |",
        "|---|---:|---:|---:|",
        f"| top-1 accuracy | {metrics.accuracy:.4f} | {majority.accuracy:.4f} | {uniform.accuracy:.4f} |",
        f"| macro F1 | {metrics.macro_f1:.4f} | {majority.macro_f1:.4f} | {uniform.macro_f1:.4f} |",
        f"| balanced accuracy | {metrics.balanced_accuracy:.4f} | {majority.balanced_accuracy:.4f} | "
        f"{uniform.balanced_accuracy:.4f} |",
        "",
        "## Per class",
        "",
        f"A class without support here is {NOT_EVALUABLE}: it is left out of macro F1 and balanced accuracy.",
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---:|---:|---:|---:|",
    ]
    for i, c in enumerate(metrics.classes):
        if metrics.support[i] == 0:
            lines.append(f"| {c} | {NOT_EVALUABLE} | {NOT_EVALUABLE} | {NOT_EVALUABLE} | 0 |")
            continue
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
