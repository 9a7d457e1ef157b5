"""The run folder ``experiments/<name>_<timestamp>/`` and what lives in it.

::

    config.json              the TrainConfig of the run (also valid as --config input)
    run.json                 dataset folder, world size, versions, start time
    results.json             best epoch, history, validation and test metrics (written at the end)
    report.md                Markdown evaluation report of the best checkpoint on the test split
    checkpoints/best.pt      actwatch checkpoint (load_checkpoint / actwatch export) of the best epoch
    checkpoints/last.pt      ... of the last finished epoch
    checkpoints/last.state.pt  the RunState: optimizer, scheduler, scaler, epoch, history (--resume)
    plots/                   loss.png, accuracy.png, confusion_matrix.png (test), confusion_val.png
    tensorboard/             SummaryWriter logs

Example:
    >>> import tempfile
    >>> run_dir = new_run_dir(Path(tempfile.mkdtemp()), "demo")
    >>> save_state(run_dir / "checkpoints" / STATE, RunState(epoch=2, best_metric=0.9, best_epoch=2))
    >>> load_state(run_dir / "checkpoints" / STATE).best_epoch
    2
    >>> resolve_resume(run_dir)
    Traceback (most recent call last):
    ...
    actwatch.errors.StateError: cannot resume from ...: last.pt is missing (did the first epoch finish?)
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from actwatch.errors import ConfigError, StateError
from actwatch.fileio import atomic_path, atomic_write_json, atomic_write_text
from actwatch.train.config import TrainConfig, load_train_config
from actwatch.train.metrics import ClassificationMetrics, markdown_report, plot_confusion, plot_curves

BEST = "best.pt"
LAST = "last.pt"
STATE = "last.state.pt"


def new_run_dir(out_dir: Path, name: str) -> Path:
    """A fresh ``<out_dir>/<name>_<YYYYmmdd-HHMMSS>`` (``-2``, ``-3``... if taken)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = out_dir / f"{name}_{stamp}"
    path, n = base, 1
    while True:
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            n += 1
            path = base.with_name(f"{base.name}-{n}")


def resolve_resume(path: Path) -> tuple[Path, Path, Path]:
    """``(run_dir, last.pt, last.state.pt)`` from a run folder, its ``last.pt`` or its state file."""
    if path.is_dir():
        run_dir = path
    elif path.name in (LAST, STATE, BEST) and path.parent.name == "checkpoints":
        run_dir = path.parent.parent
    else:
        raise ConfigError(f"--resume {path}: give a run folder or its checkpoints/last.pt")
    last, state = run_dir / "checkpoints" / LAST, run_dir / "checkpoints" / STATE
    for needed in (last, state, run_dir / "config.json"):
        if not needed.is_file():
            raise StateError(f"cannot resume from {run_dir}: {needed.name} is missing (did the first epoch finish?)")
    return run_dir, last, state


def resume_config(run_dir: Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """The run's own config with ``overrides`` (e.g. more ``epochs``) on top."""
    return load_train_config(run_dir / "config.json", overrides)


def run_info(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "run.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def write_run_files(run_dir: Path, config: TrainConfig, info: dict[str, Any]) -> None:
    atomic_write_json(run_dir / "config.json", config.model_dump(mode="json"))
    atomic_write_json(run_dir / "run.json", info)


@dataclass(frozen=True)
class RunState:
    """Where a run stands after ``epoch`` finished epochs: everything ``--resume`` restores.

    ``best_metric`` is signed so that higher is better (a monitored loss is stored negated);
    ``best_loss`` is the validation loss of the best epoch, the tie-breaker of equal metrics.
    ``optimizer``/``scheduler``/``scaler`` are the state dicts of those objects (None before the first
    epoch). Saved as one object with :func:`save_state`, read back with :func:`load_state`.

    Example:
        >>> RunState().epoch, RunState().best_metric
        (0, -inf)
    """

    epoch: int = 0
    best_metric: float = -math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    best_loss: float = math.inf
    history: tuple[dict[str, Any], ...] = ()
    optimizer: dict[str, Any] | None = field(default=None, repr=False)
    scheduler: dict[str, Any] | None = field(default=None, repr=False)
    scaler: dict[str, Any] | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain types and tensors only, so that ``torch.load(weights_only=True)`` reads it back."""
        state = asdict(self)
        state["history"] = json.loads(json.dumps(list(self.history)))
        return state

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> RunState:
        return cls(
            epoch=int(state["epoch"]),
            best_metric=float(state["best_metric"]),
            best_epoch=int(state["best_epoch"]),
            bad_epochs=int(state["bad_epochs"]),
            best_loss=float(state.get("best_loss", math.inf)),  # absent in state files of older versions
            history=tuple(state["history"]),
            optimizer=state.get("optimizer"),
            scheduler=state.get("scheduler"),
            scaler=state.get("scaler") or None,
        )


def save_state(path: Path, state: RunState) -> None:
    """Write ``state`` atomically."""
    with atomic_path(path) as tmp:
        torch.save(state.to_dict(), tmp)


def load_state(path: Path) -> RunState:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged file fails in many ways inside torch
        raise StateError(f"training state {path} cannot be read ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or "epoch" not in state:
        raise StateError(f"{path} is not an actwatch training-state file")
    try:
        return RunState.from_dict(state)
    except (KeyError, TypeError, ValueError) as exc:
        raise StateError(f"training state {path} is incomplete ({type(exc).__name__}: {exc})") from exc


def write_results(
    run_dir: Path,
    classes: list[str],
    history: list[dict[str, Any]],
    summary: dict[str, Any],
    val: ClassificationMetrics,
    test: ClassificationMetrics | None,
) -> None:
    """``results.json``, ``report.md`` and the plots of a finished run (test split, else val)."""
    plots = run_dir / "plots"
    plot_curves(history, plots)
    plot_confusion(val.confusion, classes, plots / "confusion_val.png", "Validation confusion matrix")
    shown, split = (test, "test") if test is not None else (val, "val")
    plot_confusion(shown.confusion, classes, plots / "confusion_matrix.png", f"{split} confusion matrix")
    results = {
        **summary,
        "val": val.to_dict(),
        "test": test.to_dict() if test is not None else None,
        "history": history,
    }
    atomic_write_json(run_dir / "results.json", results)
    details = {"checkpoint": f"checkpoints/{BEST} (epoch {summary.get('best_epoch')})", "split": split}
    report = markdown_report(
        shown,
        title=f"Evaluation of {run_dir.name}",
        details=details,
        images=["plots/confusion_matrix.png", "plots/loss.png", "plots/accuracy.png"],
    )
    atomic_write_text(run_dir / "report.md", report)
