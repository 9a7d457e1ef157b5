"""ONNX export: graphs, dynamic axes, parity with PyTorch, fp16, R3D-18, and all-or-nothing writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from actwatch.errors import CheckpointError
from actwatch.export import onnx_export
from actwatch.export.onnx_export import ExportError, ExportReport, export_checkpoint
from actwatch.model.checkpoint import init_checkpoint, load_checkpoint, save_checkpoint
from actwatch.model.config import InputSpec, ModelConfig
from actwatch.model.manifest import load_manifest
from actwatch.model.networks import ActionRecognizer
from actwatch.model.preprocess import preprocess_crops
from actwatch.model.runtime import ActionRuntime, FeatureCacheUnsupportedError


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max())


def test_graphs_are_valid_and_batch_axes_dynamic(exported_model_dir: Path) -> None:
    expected = {
        "encoder.onnx": (["N", 3, 64, 64], ["N", 1280]),
        "head.onnx": (["B", 8, 1280], ["B", 3]),
        "model.onnx": (["B", 8, 3, 64, 64], ["B", 3]),
    }
    for name, (in_shape, out_shape) in expected.items():
        path = exported_model_dir / name
        onnx.checker.check_model(str(path), full_check=True)
        graph = onnx.load(str(path)).graph
        dims = [
            [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in (graph.input[0], graph.output[0])
        ]
        assert dims == [in_shape, out_shape], name
        assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert sorted(p.name for p in exported_model_dir.iterdir()) == [
        "encoder.onnx",
        "head.onnx",
        "manifest.json",
        "model.onnx",
    ]


def test_parity_with_pytorch_at_other_batch_sizes(exported_model_dir: Path, checkpoint_path: Path) -> None:
    """Independent of the export's own check: ORT vs torch at batch sizes 1 and 5 (export used 2)."""
    ckpt = load_checkpoint(checkpoint_path)
    model = ckpt.build_model()
    assert isinstance(model, ActionRecognizer)
    encoder, head, whole = (_session(exported_model_dir / f"{n}.onnx") for n in ("encoder", "head", "model"))
    rng = np.random.default_rng(42)
    for batch in (1, 5):
        frames = preprocess_crops(rng.integers(0, 256, (batch * 8, 64, 64, 3), dtype=np.uint8), ckpt.input)
        windows = frames.reshape(batch, 8, 3, 64, 64)
        with torch.no_grad():
            feats_t = model.encoder(torch.from_numpy(frames)).numpy()
            head_t = model.head(torch.from_numpy(feats_t.reshape(batch, 8, -1))).numpy()
            whole_t = model(torch.from_numpy(windows)).numpy()
        feats_o = encoder.run(None, {"images": frames})[0]
        head_o = head.run(None, {"features": feats_t.reshape(batch, 8, -1)})[0]
        whole_o = whole.run(None, {"frames": windows})[0]
        split_o = head.run(None, {"features": feats_o.reshape(batch, 8, -1)})[0]
        assert feats_o.shape == (batch * 8, 1280) and whole_o.shape == (batch, 3)
        scale = max(1.0, float(np.abs(feats_t).max()))
        assert _max_diff(feats_o, feats_t) <= 1e-4 * scale
        assert _max_diff(head_o, head_t) <= 1e-4
        assert _max_diff(whole_o, whole_t) <= 1e-4
        assert _max_diff(split_o, whole_o) <= 1e-4
        assert np.abs(feats_t).max() > 0.1  # the features are not trivially ~0


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A transformer-head model on 32x32 crops, 4 per window: the cheapest export to repeat."""
    ckpt = init_checkpoint(
        ["a", "b"],
        ModelConfig(temporal="transformer", hidden_size=16, num_heads=2, fc_size=8, pretrained=False),
        InputSpec(seq_len=4, input_size=32),
    )
    path = tmp_path_factory.mktemp("tiny") / "tiny.pt"
    save_checkpoint(ckpt, path)
    return path


@pytest.fixture(scope="module")
def report(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> ExportReport:
    return export_checkpoint(tiny_checkpoint, tmp_path_factory.mktemp("report") / "out")


def test_report_figures(report: ExportReport) -> None:
    assert report.passed and report.split and not report.fp16 and report.opset == 17
    assert report.classes == ("a", "b") and [name for name, _ in report.files] == [
        "encoder.onnx",
        "head.onnx",
        "model.onnx",
    ]
    assert [c.name for c in report.checks] == ["encoder", "head", "model", "split vs whole"]
    for check in report.checks:
        assert check.batch_sizes == (1, 3) and 2 not in check.batch_sizes
        assert check.max_abs_diff <= check.tolerance
    assert report.model_max_abs_diff <= 1e-4
    assert report.head_max_abs_diff is not None and report.head_max_abs_diff <= 1e-4
    assert report.split_vs_whole_max_abs_diff is not None and report.split_vs_whole_max_abs_diff <= 1e-4
    assert report.encoder_max_abs_diff is not None and report.encoder_max_abs_diff > 0  # really computed
    assert torch.backends.mha.get_fastpath_enabled()  # the export switched it off only while tracing
    table = report.format_table()
    assert "split vs whole" in table and f"{report.model_max_abs_diff:.3e}" in table
    print(table)


def test_manifest_describes_the_checkpoint(report: ExportReport, tiny_checkpoint: Path) -> None:
    manifest = load_manifest(report.out_dir)
    ckpt = load_checkpoint(tiny_checkpoint)
    assert tuple(manifest.classes) == ckpt.classes
    assert manifest.input_spec() == ckpt.input
    assert manifest.checkpoint["path"] == str(tiny_checkpoint.resolve())
    assert manifest.checkpoint["metadata"] == ckpt.metadata
    assert manifest.checkpoint["model_config"]["temporal"] == "transformer"


def test_reexport_replaces_and_failures_leave_nothing(
    report: ExportReport, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = report.out_dir
    parent = out.parent
    before = load_manifest(out).created_at
    monkeypatch.setattr(onnx_export, "FP32_TOLERANCE", 0.0)  # force a parity failure after all graphs exist
    with pytest.raises(ExportError, match=r"do not reproduce PyTorch.*nothing was written"):
        export_checkpoint(tiny_checkpoint, parent / "failed")
    monkeypatch.undo()
    assert sorted(p.name for p in parent.iterdir()) == ["out"]  # no half folder, no temp folder
    export_checkpoint(tiny_checkpoint, out)
    assert load_manifest(out).created_at > before
    assert sorted(p.name for p in parent.iterdir()) == ["out"]


def test_refuses_folders_with_other_files_and_bad_inputs(tmp_path: Path, tiny_checkpoint: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match=r"other files \(notes.txt\)"):
        export_checkpoint(tiny_checkpoint, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    with pytest.raises(ExportError, match="opset 30"):
        export_checkpoint(tiny_checkpoint, tmp_path / "x", opset=30)
    with pytest.raises(CheckpointError, match="not found"):
        export_checkpoint(tmp_path / "missing.pt", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_fp16_export(tmp_path: Path) -> None:
    ckpt = init_checkpoint(
        ["a", "b", "c"],
        ModelConfig(hidden_size=16, fc_size=8, num_layers=2, bidirectional=True, pretrained=False),
        InputSpec(seq_len=8, input_size=32),
    )
    report = export_checkpoint(ckpt, tmp_path / "fp16", fp16=True)
    print(report.format_table())
    assert report.fp16 and report.passed
    assert 0 < report.model_max_abs_diff <= 1e-2  # logits within 1e-2 of fp32 torch
    assert report.encoder_max_abs_diff is not None and report.encoder_max_abs_diff > 1e-5  # really fp16
    manifest = load_manifest(tmp_path / "fp16")
    assert manifest.fp16
    graph = onnx.load(str(tmp_path / "fp16" / "encoder.onnx")).graph
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # fp32 in and out
    assert graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    dtypes = {init.data_type for init in graph.initializer if len(init.dims) > 1}
    assert dtypes == {onnx.TensorProto.FLOAT16}
    rt = ActionRuntime(tmp_path / "fp16")
    windows = np.random.default_rng(0).integers(0, 256, (2, 8, 32, 32, 3), dtype=np.uint8)
    probs = rt.classify_crops(windows)
    assert probs.dtype == np.float32 and probs.shape == (2, 3)
    split = rt.classify(rt.encode(windows.reshape(-1, 32, 32, 3)).reshape(2, 8, -1))
    np.testing.assert_allclose(split, probs, atol=1e-2)


def test_r3d18_export_and_runtime(tmp_path: Path) -> None:
    ckpt = init_checkpoint(
        ["a", "b", "c"],
        ModelConfig(arch="r3d_18", pretrained=False),
        InputSpec.for_arch("r3d_18", seq_len=4, input_size=32),
    )
    report = export_checkpoint(ckpt, tmp_path / "r3d", opset=18)
    print(report.format_table())
    assert not report.split and report.opset == 18 and [c.name for c in report.checks] == ["model"]
    assert report.model_max_abs_diff <= 1e-4
    assert report.encoder_max_abs_diff is None and report.split_vs_whole_max_abs_diff is None
    assert sorted(p.name for p in (tmp_path / "r3d").iterdir()) == ["manifest.json", "model.onnx"]
    manifest = json.loads((tmp_path / "r3d" / "manifest.json").read_text())
    assert manifest["split"] is False and manifest["feature_dim"] is None and set(manifest["graphs"]) == {"model"}
    rt = ActionRuntime(tmp_path / "r3d")
    assert not rt.supports_feature_cache and rt.feature_dim is None
    windows = np.random.default_rng(0).integers(0, 256, (3, 4, 32, 32, 3), dtype=np.uint8)
    probs = rt.classify_crops(windows)
    assert probs.shape == (3, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    with pytest.raises(FeatureCacheUnsupportedError, match=r"r3d_18.*classify_crops"):
        rt.encode(windows[0])
    with pytest.raises(FeatureCacheUnsupportedError):
        rt.classify(np.zeros((1, 4, 1280), np.float32))
