"""Checkpoint -> ONNX graphs + ``manifest.json``, checked against PyTorch before anything is published.

For MobileNetV2 models three graphs are written: ``encoder.onnx`` (``(N, 3, H, W)`` -> ``(N, 1280)``),
``head.onnx`` (``(B, T, 1280)`` -> ``(B, C)`` logits, T fixed to the checkpoint's seq_len) and
``model.onnx`` (``(B, T, 3, H, W)`` -> logits). R3D-18 gets ``model.onnx`` only. Batch axes are dynamic.

Every graph passes ``onnx.checker``; ONNX Runtime (CPU) is then compared with PyTorch on random crops
(through :func:`preprocess_crops`, the runtime's own preprocessing) at batch sizes other than the one
used for export, so dynamic axes are exercised too, and the split path (encoder then head) is compared
with the whole graph. Everything is written to a temporary sibling folder and moved into place only when
all checks pass, so a failed export leaves nothing half-written.

Example (a tiny untrained model):
    >>> import tempfile
    >>> from actwatch.model.checkpoint import init_checkpoint
    >>> from actwatch.model.config import InputSpec, ModelConfig
    >>> model = ModelConfig(hidden_size=8, fc_size=4, pretrained=False)
    >>> ckpt = init_checkpoint(["walking", "falling"], model, InputSpec(seq_len=4, input_size=32))
    >>> report = export_checkpoint(ckpt, Path(tempfile.mkdtemp()) / "exported")
    >>> report.passed, report.split, sorted(name for name, _ in report.files)
    (True, True, ['encoder.onnx', 'head.onnx', 'model.onnx'])
    >>> report.model_max_abs_diff <= 1e-4
    True
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from actwatch.errors import ExportError
from actwatch.fileio import atomic_path, sha256_file
from actwatch.model.checkpoint import Checkpoint, load_checkpoint
from actwatch.model.manifest import (
    MANIFEST_FILE,
    MANIFEST_FORMAT,
    MANIFEST_VERSION,
    GraphInfo,
    Manifest,
)
from actwatch.model.networks import FEATURE_DIM
from actwatch.model.preprocess import preprocess_crops
from actwatch.model.recognizer import Recognizer
from actwatch.model.runtime import make_session

EXPORT_BATCH = 2  # batch size traced into the graphs; parity runs at PARITY_BATCHES to prove dynamic axes
PARITY_BATCHES = (1, 3)
# Allowed max |ONNX Runtime - PyTorch| is TOLERANCE x max(1, max |PyTorch output|): absolute for
# outputs up to 1 (logits of an untrained model, 1e-4 in fp32), relative for larger ones (encoder
# features, confident logits), whose rounding differences grow with them. fp16 is compared with the
# fp32 reference: float16 weights and activations through MobileNetV2's ~50 layers move features by
# up to ~1.5% of their range (torch .half() does the same), logits by ~1e-3.
FP32_TOLERANCE = 1e-4
FP16_TOLERANCE = 5e-2
MIN_OPSET, MAX_OPSET = 14, 20  # scaled-dot-product attention needs 14; the legacy exporter stops at 20
_OUR_FILES = {"encoder.onnx", "head.onnx", "model.onnx", MANIFEST_FILE}
_IO = {
    "encoder": (["images"], ["features"]),
    "head": (["features"], ["logits"]),
    "model": (["frames"], ["logits"]),
}


@dataclass(frozen=True)
class ParityCheck:
    """One comparison: ``max_abs_diff`` between ``actual`` and ``reference`` over ``batch_sizes``."""

    name: str
    actual: str
    reference: str
    batch_sizes: tuple[int, ...]
    max_abs_diff: float
    reference_max_abs: float
    tolerance: float

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.tolerance


@dataclass(frozen=True)
class ExportReport:
    """What an export wrote and how closely ONNX Runtime reproduced PyTorch (see the module's example)."""

    out_dir: Path
    arch: str
    classes: tuple[str, ...]
    split: bool
    fp16: bool
    opset: int
    files: tuple[tuple[str, int], ...]  # (file name, bytes)
    checks: tuple[ParityCheck, ...]
    seconds: float

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def _diff(self, name: str) -> float | None:
        return next((c.max_abs_diff for c in self.checks if c.name == name), None)

    @property
    def encoder_max_abs_diff(self) -> float | None:
        return self._diff("encoder")

    @property
    def head_max_abs_diff(self) -> float | None:
        return self._diff("head")

    @property
    def model_max_abs_diff(self) -> float:
        diff = self._diff("model")
        assert diff is not None  # every export has a whole-model graph
        return diff

    @property
    def split_vs_whole_max_abs_diff(self) -> float | None:
        return self._diff("split vs whole")

    def format_table(self) -> str:
        """The parity figures as a text table."""
        rows = [("check", "compared", "batches", "max |diff|", "max |ref|", "tolerance", "ok")]
        for c in self.checks:
            rows.append(
                (
                    c.name,
                    f"{c.actual} vs {c.reference}",
                    ",".join(map(str, c.batch_sizes)),
                    f"{c.max_abs_diff:.3e}",
                    f"{c.reference_max_abs:.3g}",
                    f"{c.tolerance:.1e}",
                    "yes" if c.passed else "NO",
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        files = ", ".join(f"{name} ({size / 1e6:.1f} MB)" for name, size in self.files)
        head = (
            f"exported {self.arch} ({len(self.classes)} classes, {'fp16' if self.fp16 else 'fp32'}, "
            f"opset {self.opset}) to {self.out_dir} in {self.seconds:.1f} s: {files}"
        )
        return head + "\n" + "\n".join(line.rstrip() for line in lines)


def _export_graph(module: nn.Module, example: torch.Tensor, path: Path, role: str, opset: int) -> None:
    inputs, outputs = _IO[role]
    axis = "N" if role == "encoder" else "B"
    # no_grad keeps tracing memory small (R3D-18 on 30 frames); then torch would run transformer layers
    # through its fused fast path (aten::_transformer_encoder_layer_fwd), which has no ONNX translation,
    # so the fast path is switched off (a process-wide flag) for the duration of the export only.
    fastpath = torch.backends.mha.get_fastpath_enabled()
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter warns that it is deprecated and that shapes are traced as constants
        # (T, H, W are fixed on purpose); none of it is actionable, and the parity checks are the guard.
        warnings.simplefilter("ignore")
        torch.backends.mha.set_fastpath_enabled(False)
        try:
            # dynamo=False: the torch.export-based exporter needs onnxscript and is less reliable with RNNs.
            torch.onnx.export(
                module,
                (example,),
                str(path),
                input_names=inputs,
                output_names=outputs,
                dynamic_axes={inputs[0]: {0: axis}, outputs[0]: {0: axis}},
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
        finally:
            torch.backends.mha.set_fastpath_enabled(fastpath)


def _to_fp16(path: Path) -> None:
    """Store weights and compute as float16, keeping float32 inputs and outputs (callers are unchanged)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(path)), keep_io_types=True)
    _topological_sort(model.graph)  # the converter appends its input casts last; the checker wants order
    onnx.save(model, str(path))


def _topological_sort(graph: onnx.GraphProto) -> None:
    """Reorder ``graph.node`` so that every node comes after the nodes producing its inputs."""
    ready = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending = list(graph.node)
    ordered: list[onnx.NodeProto] = []
    while pending:
        waiting = []
        for node in pending:
            if all(name in ready for name in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                waiting.append(node)
        if len(waiting) == len(pending):
            raise ExportError(f"fp16 graph has a cycle or dangling input at node {waiting[0].name!r}")
        pending = waiting
    del graph.node[:]
    graph.node.extend(ordered)


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0


def _parity(
    model: Recognizer, ckpt: Checkpoint, graphs: dict[str, Path], fp16: bool, seed: int = 0
) -> tuple[ParityCheck, ...]:
    spec = ckpt.input
    height, width = spec.input_size
    rng = np.random.default_rng(seed)
    sessions = {role: make_session(path, ["CPUExecutionProvider"], fp16=fp16) for role, path in graphs.items()}

    def ort_run(role: str, x: np.ndarray) -> np.ndarray:
        return np.asarray(sessions[role].run(None, {_IO[role][0][0]: x})[0])

    def torch_run(fn: Callable[[torch.Tensor], torch.Tensor], x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return fn(torch.from_numpy(x)).numpy()

    # diffs[name] = (max |diff|, max |reference|)
    diffs: dict[str, list[tuple[float, float]]] = {}
    for batch in PARITY_BATCHES:
        crops = rng.integers(0, 256, (batch * spec.seq_len, height, width, 3), dtype=np.uint8)
        frames = preprocess_crops(crops, spec)  # (B*T, 3, H, W)
        windows = frames.reshape(batch, spec.seq_len, 3, height, width)
        whole_ref = torch_run(model, windows)
        whole_ort = ort_run("model", windows)
        diffs.setdefault("model", []).append((_max_diff(whole_ort, whole_ref), float(np.abs(whole_ref).max())))
        if model.supports_feature_cache:
            feats_ref = torch_run(model.frame_encoder(), frames)
            feats_ort = ort_run("encoder", frames)
            diffs.setdefault("encoder", []).append((_max_diff(feats_ort, feats_ref), float(np.abs(feats_ref).max())))
            seq_ref = feats_ref.reshape(batch, spec.seq_len, -1)
            head_ref = torch_run(model.feature_head(), seq_ref)
            head_ort = ort_run("head", seq_ref)
            diffs.setdefault("head", []).append((_max_diff(head_ort, head_ref), float(np.abs(head_ref).max())))
            split_ort = ort_run("head", feats_ort.reshape(batch, spec.seq_len, -1))
            diffs.setdefault("split vs whole", []).append(
                (_max_diff(split_ort, whole_ort), float(np.abs(whole_ort).max()))
            )
    labels = {
        "encoder": ("encoder.onnx", "torch encoder"),
        "head": ("head.onnx", "torch head"),
        "model": ("model.onnx", "torch model"),
        "split vs whole": ("encoder+head.onnx", "model.onnx"),
    }
    checks = []
    for name in ("encoder", "head", "model", "split vs whole"):
        if name not in diffs:
            continue
        diff = max(d for d, _ in diffs[name])
        scale = max(r for _, r in diffs[name])
        tolerance = (FP16_TOLERANCE if fp16 else FP32_TOLERANCE) * max(1.0, scale)
        checks.append(ParityCheck(name, *labels[name], PARITY_BATCHES, diff, scale, tolerance))
    return tuple(checks)


def _check_out_dir(out_dir: Path) -> None:
    """``out_dir`` must be new, empty or an earlier export (which is replaced): never other files."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise ExportError(f"{out_dir} exists and is not a folder; choose another --out")
    foreign = sorted(p.name for p in out_dir.iterdir() if p.name not in _OUR_FILES)
    if foreign:
        raise ExportError(
            f"{out_dir} already holds other files ({', '.join(foreign[:5])}); export into a new or empty folder"
        )


def export_checkpoint(
    checkpoint: Path | str | Checkpoint,
    out_dir: Path | str,
    fp16: bool = False,
    opset: int = 17,
) -> ExportReport:
    """Export ``checkpoint`` to ONNX in ``out_dir``, check the graphs and write ``manifest.json``.

    Raises CheckpointError for a bad checkpoint and ExportError when the graphs do not reproduce
    PyTorch within tolerance: max |diff| <= 1e-4 (fp32) or 5e-2 (fp16) x max(1, max |reference|).
    """
    started = time.perf_counter()
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(f"opset {opset} is not supported; use {MIN_OPSET}..{MAX_OPSET} (default 17)")
    out_dir = Path(out_dir)
    _check_out_dir(out_dir)
    source = None if isinstance(checkpoint, Checkpoint) else Path(checkpoint)
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    model = ckpt.build_model()
    spec = ckpt.input
    split = model.supports_feature_cache  # copied into the manifest: what the runtime reads
    # Written beside out_dir and moved into place only when every check passed (nothing half-written).
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        height, width = spec.input_size
        gen = torch.Generator().manual_seed(0)
        examples: dict[str, tuple[nn.Module, torch.Tensor]] = {
            "model": (model, torch.randn(EXPORT_BATCH, spec.seq_len, 3, height, width, generator=gen))
        }
        if split:
            examples["encoder"] = (model.frame_encoder(), torch.randn(EXPORT_BATCH, 3, height, width, generator=gen))
            examples["head"] = (
                model.feature_head(),
                torch.randn(EXPORT_BATCH, spec.seq_len, FEATURE_DIM, generator=gen),
            )
        graphs: dict[str, Path] = {}
        for role in ("encoder", "head", "model"):
            if role not in examples:
                continue
            path = tmp / f"{role}.onnx"
            try:
                _export_graph(*examples[role], path, role, opset)
                if fp16:
                    _to_fp16(path)
                onnx.checker.check_model(str(path), full_check=True)
            except Exception as exc:
                # torch's messages can embed the whole traced graph: keep the first line.
                first = (str(exc).strip().splitlines() or [""])[0][:500]
                raise ExportError(f"exporting {role}.onnx failed: {type(exc).__name__}: {first}") from exc
            graphs[role] = path
        checks = _parity(model, ckpt, graphs, fp16)
        report = ExportReport(
            out_dir=out_dir,
            arch=ckpt.model_config.arch,
            classes=ckpt.classes,
            split=split,
            fp16=fp16,
            opset=opset,
            files=tuple((p.name, p.stat().st_size) for p in graphs.values()),
            checks=checks,
            seconds=time.perf_counter() - started,
        )
        if not report.passed:
            raise ExportError(
                "the ONNX graphs do not reproduce PyTorch within tolerance; nothing was written:\n"
                + report.format_table()
            )
        manifest = Manifest(
            format=MANIFEST_FORMAT,
            version=MANIFEST_VERSION,
            arch=ckpt.model_config.arch,
            classes=list(ckpt.classes),
            seq_len=spec.seq_len,
            fps=spec.fps,
            input_size=spec.input_size,
            mean=spec.mean,
            std=spec.std,
            feature_dim=FEATURE_DIM if split else None,
            opset=opset,
            fp16=fp16,
            split=split,
            graphs={
                role: GraphInfo(file=p.name, sha256=sha256_file(p), inputs=_IO[role][0], outputs=_IO[role][1])
                for role, p in graphs.items()
            },
            created_at=datetime.now(UTC),
            checkpoint={
                "path": str(source.resolve()) if source else None,
                "model_config": ckpt.model_config.model_dump(mode="json"),
                "metadata": ckpt.metadata,
            },
        )
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest.model_dump(mode="json"), indent=2) + "\n")
        _check_out_dir(out_dir)  # again: it may have changed while the export ran
    return dataclasses.replace(report, seconds=time.perf_counter() - started)
