"""manifest.json loading: every way an exported folder can be wrong."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from actwatch.errors import ManifestError
from actwatch.fileio import sha256_file
from actwatch.model.manifest import MANIFEST_FILE, load_manifest


@pytest.fixture
def model_copy(exported_model_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "exported"
    shutil.copytree(exported_model_dir, copy)
    return copy


def _edit(folder: Path, **changes: object) -> None:
    path = folder / MANIFEST_FILE
    raw = json.loads(path.read_text())
    raw.update(changes)
    path.write_text(json.dumps(raw))


def test_valid_manifest(exported_model_dir: Path) -> None:
    m = load_manifest(exported_model_dir)
    assert m.classes == ["walking", "standing", "fighting"]
    assert (m.seq_len, m.input_size, m.fps, m.feature_dim, m.split, m.fp16, m.opset) == (
        8,
        (64, 64),
        10.0,
        1280,
        True,
        False,
        17,
    )
    assert set(m.graphs) == {"encoder", "head", "model"}
    for graph in m.graphs.values():
        assert graph.sha256 == sha256_file(exported_model_dir / graph.file)
    assert m.graphs["head"].inputs == ["features"] and m.graphs["model"].outputs == ["logits"]
    assert m.input_spec().input_size == (64, 64)
    assert m.checkpoint["model_config"]["hidden_size"] == 64


def test_missing_folder_and_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="not found"):
        load_manifest(tmp_path / "nope")
    with pytest.raises(ManifestError, match=r"has no manifest.json"):
        load_manifest(tmp_path)
    (tmp_path / "f").write_text("x")
    with pytest.raises(ManifestError, match="not a folder"):
        load_manifest(tmp_path / "f")


def test_bad_json(model_copy: Path) -> None:
    (model_copy / MANIFEST_FILE).write_text('{"format": "actwatch-onnx", ')
    with pytest.raises(ManifestError, match=r"not valid JSON.*actwatch export"):
        load_manifest(model_copy)


def test_foreign_manifest(model_copy: Path) -> None:
    (model_copy / MANIFEST_FILE).write_text(json.dumps({"name": "some other tool", "version": 3}))
    with pytest.raises(ManifestError, match="not an actwatch manifest"):
        load_manifest(model_copy)
    (model_copy / MANIFEST_FILE).write_text("[1, 2]")
    with pytest.raises(ManifestError, match="not an actwatch manifest"):
        load_manifest(model_copy)


def test_invalid_or_newer_manifest(model_copy: Path) -> None:
    _edit(model_copy, seq_len=0)
    with pytest.raises(ManifestError, match=r"is invalid.*seq_len"):
        load_manifest(model_copy)
    _edit(model_copy, seq_len=8, version=7)
    with pytest.raises(ManifestError, match="upgrade actwatch"):
        load_manifest(model_copy)
    raw = json.loads((model_copy / MANIFEST_FILE).read_text())
    del raw["graphs"]["head"]
    raw["version"] = 1
    (model_copy / MANIFEST_FILE).write_text(json.dumps(raw))
    with pytest.raises(ManifestError, match=r"graphs \['head'\] missing"):
        load_manifest(model_copy)


def test_graph_path_outside_the_folder_is_rejected(model_copy: Path) -> None:
    raw = json.loads((model_copy / MANIFEST_FILE).read_text())
    raw["graphs"]["model"]["file"] = "../model.onnx"
    (model_copy / MANIFEST_FILE).write_text(json.dumps(raw))
    with pytest.raises(ManifestError, match="plain file name"):
        load_manifest(model_copy)


def test_missing_graph_file(model_copy: Path) -> None:
    (model_copy / "head.onnx").unlink()
    with pytest.raises(ManifestError, match=r"head graph head.onnx is missing.*actwatch export"):
        load_manifest(model_copy)


def test_tampered_graph(model_copy: Path) -> None:
    with (model_copy / "encoder.onnx").open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ManifestError, match=r"encoder.onnx does not match the sha256.*re-run `actwatch export"):
        load_manifest(model_copy)
    assert load_manifest(model_copy, verify_hashes=False).split
