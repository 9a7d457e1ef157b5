"""The untrained model that ``actwatch demo`` and ``actwatch bench`` run when no trained one is given.

Its labels are noise (no weights are trained, and ImageNet weights cannot be downloaded offline); it
exists so the whole path runs end to end, and so the benchmark times real ONNX graphs of the real shape.

Example:
    >>> DEMO_CLASSES[:2]
    ('walking', 'standing')
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

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
