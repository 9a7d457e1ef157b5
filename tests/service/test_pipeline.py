"""StreamPipeline replayed frame by frame on vtest.avi with the real detector and real ONNX graphs.

The stages are built by the service's own wiring (:func:`~actwatch.service.stages.build_stages`) from an
:class:`~actwatch.config.AppConfig`, with replays of vtest.avi as readers. The detector and runtime
are the real ones, wrapped by recorders that delegate and remember the batch
sizes they were called with, so the tests can check the streaming contract: one detector call per step
for all cameras, one encoder call per step for all new crops, every crop encoded exactly once, and the
head fed the very features the encoder produced. Each test runs on both runtimes: the sequential
loop (:meth:`StreamPipeline.step`) and the pipelined one (:meth:`StreamPipeline.staged`), driven in
lock-step: a batch is submitted, then :meth:`~actwatch.service.staged.StagedRunner.flush` waits until
it has gone through every phase and the event writer — the tests wait for exactly what they check.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest

from actwatch.capture.replay import ReplayReader
from actwatch.config import AppConfig
from actwatch.model.config import InputSpec
from actwatch.model.runtime import RecognitionRuntime
from actwatch.service.events import AlertRecord, FrameOverlay
from actwatch.service.metrics import ServiceMetrics
from actwatch.service.pipeline import StepReport, StreamPipeline
from actwatch.service.stages import CPU_FRAME_WAIT_MS, Detector, build_stages
from actwatch.tracker.detections import Detections
from tests.tracker.videos import write_scene_cut_clip

FRAMES = 30
DRAIN_TIMEOUT_S = 600.0  # a safety net for a hung thread, never a timing assumption

RUNTIMES = ["sequential", "pipelined"]


class Driver:
    """Runs one batch at a time through the pipeline on either runtime, and waits for its end."""

    def __init__(self, pipeline: StreamPipeline, runtime: str) -> None:
        self.pipeline = pipeline
        self.runner = pipeline.staged() if runtime == "pipelined" else None

    def step(self) -> list[StepReport]:
        if self.runner is None:
            return [self.pipeline.step()]
        self.runner.submit()
        return self.runner.flush(DRAIN_TIMEOUT_S)

    def close(self) -> None:
        if self.runner is not None:
            self.runner.stop()


class RecordingDetector:
    def __init__(self, detector: Detector) -> None:
        self.detector = detector
        self.batches: list[int] = []

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        self.batches.append(len(images))
        return self.detector.detect(images)


class RecordingRuntime:
    def __init__(self, runtime: RecognitionRuntime) -> None:
        self.runtime = runtime
        self.encoded: list[np.ndarray] = []  # every feature the encoder produced, in order
        self.encode_calls = 0
        self.classified: list[np.ndarray] = []

    @property
    def classes(self) -> Sequence[str]:
        return self.runtime.classes

    @property
    def spec(self) -> InputSpec:
        return self.runtime.spec

    @property
    def supports_feature_cache(self) -> bool:
        return self.runtime.supports_feature_cache

    def encode(self, crops: np.ndarray) -> np.ndarray:
        self.encode_calls += 1
        features = self.runtime.encode(crops)
        self.encoded.extend(features)
        return features

    def classify(self, features: np.ndarray) -> np.ndarray:
        self.classified.append(features)
        return self.runtime.classify(features)

    def classify_crops(self, windows: np.ndarray) -> np.ndarray:
        return self.runtime.classify_crops(windows)


class CollectingSink:
    def __init__(self) -> None:
        self.events: list[AlertRecord] = []
        self.tracks: list[FrameOverlay] = []

    def emit_event(self, alert: AlertRecord) -> None:
        self.events.append(alert)

    def emit_tracks(self, overlay: FrameOverlay, image: np.ndarray | None = None) -> None:
        self.tracks.append(overlay)


def _pipeline(
    detector_weights: Path,
    model_dir: Path,
    vtest: Path,
    cameras: Sequence[str],
    stride: int = 2,
    tracker: Mapping[str, object] | None = None,
    pipeline_settings: Mapping[str, object] | None = None,
) -> tuple[StreamPipeline, dict[str, ReplayReader], RecordingDetector, RecordingRuntime, CollectingSink]:
    config = AppConfig.model_validate(
        {
            "cameras": [{"id": cam, "url": str(vtest)} for cam in cameras],
            "sources": {"file_dirs": [str(vtest.parent)]},
            "detector": {"weights": str(detector_weights), "person_class_ids": [0, 1], "conf": 0.1},
            "model": {"dir": str(model_dir)},
            "pipeline": {"stride": stride, **(pipeline_settings or {})},
            "tracker": tracker or {},
            "alerts": {
                "rules": [
                    {"label": "walking", "threshold": 0.01, "n": 1, "m": 1, "cooldown_s": 0, "min_track_age_s": 0}
                ]
            },
        }
    )
    recorders: dict[str, RecordingDetector | RecordingRuntime] = {}

    def record_detector(detector: Detector) -> Detector:
        recorders["detector"] = recorder = RecordingDetector(detector)
        return recorder

    def record_runtime(runtime: RecognitionRuntime) -> RecognitionRuntime:
        recorders["runtime"] = recorder = RecordingRuntime(runtime)
        return recorder

    sink = CollectingSink()
    readers = {cam: ReplayReader(cam, vtest, max_frames=FRAMES) for cam in cameras}
    stages = build_stages(
        config,
        sink=sink,
        metrics=ServiceMetrics(),
        reader_factory=lambda camera: readers[camera.id],
        wrap_detector=record_detector,
        wrap_runtime=record_runtime,
    )
    pipeline = StreamPipeline(stages)
    for camera in config.cameras:
        pipeline.add_camera(camera)
    detector, runtime = recorders["detector"], recorders["runtime"]
    assert isinstance(detector, RecordingDetector) and isinstance(runtime, RecordingRuntime)
    return pipeline, readers, detector, runtime, sink


def _replay(driver: Driver, readers: dict[str, ReplayReader]) -> list[StepReport]:
    reports = []
    while any([reader.feed() for reader in readers.values()]):
        reports += driver.step()
    reports += driver.step()  # the END sentinels
    driver.close()
    return reports


@pytest.mark.parametrize("mode", RUNTIMES)
def test_each_crop_is_encoded_once_and_the_head_reads_the_cached_features(
    detector_weights: Path, exported_model_dir: Path, vtest_path: Path, mode: str
) -> None:
    pipeline, readers, recorder, runtime, sink = _pipeline(
        detector_weights, exported_model_dir, vtest_path, ["cam1", "cam2"]
    )
    reports = _replay(Driver(pipeline, mode), readers)

    # One detector call per step, with the frames of both cameras.
    assert recorder.batches == [2] * FRAMES
    # At most one encoder call per step, and exactly as many features as crops sampled.
    crops = sum(r.crops_encoded for r in reports)
    assert crops > 0 and len(runtime.encoded) == crops
    assert runtime.encode_calls <= FRAMES
    # Tracks were classified, and every feature the head saw came out of the encoder bit for bit.
    windows = [w for r in reports for w in r.windows]
    assert windows and sum(r.windows_classified for r in reports) == len(windows)
    produced = {feature.tobytes() for feature in runtime.encoded}
    for batch in runtime.classified:
        for window in batch:
            assert all(step.tobytes() in produced for step in window)
    # Windows are seq_len long, oldest first, and the camera's frames are both there.
    seq_len = runtime.runtime.spec.seq_len
    assert all(w.length == seq_len and np.all(np.diff(w.timestamps) > 0) for w in windows)
    assert {w.camera_id for w in windows} == {"cam1", "cam2"}
    # Events carry the confirming frame and the window's crops as evidence.
    assert sink.events
    event, frame, evidence = sink.events[0].event, sink.events[0].frame_bgr, sink.events[0].crops
    assert event.label == "walking" and event.camera_id in {"cam1", "cam2"}
    assert frame is not None and frame.shape == (576, 768, 3)
    # the window's own crops, one per sample, as the track buffers hold them (no stacked copy per event)
    assert evidence is not None and len(evidence) == seq_len and evidence[0].shape[-1] == 3
    # The live overlay got the current label once a track was classified.
    assert any(t.label is not None for overlay in sink.tracks for t in overlay.tracks)
    assert pipeline.all_ended()


@pytest.mark.parametrize("mode", RUNTIMES)
def test_stride_sets_how_often_a_track_is_classified(
    detector_weights: Path, exported_model_dir: Path, vtest_path: Path, mode: str
) -> None:
    counts = {}
    for stride in (1, 4):
        pipeline, readers, _, _, _ = _pipeline(
            detector_weights, exported_model_dir, vtest_path, ["cam1"], stride=stride
        )
        counts[stride] = sum(r.windows_classified for r in _replay(Driver(pipeline, mode), readers))
    assert counts[1] > 0
    assert counts[4] < counts[1] / 2


@pytest.mark.parametrize("mode", RUNTIMES)
def test_removing_a_camera_frees_its_tracks(
    detector_weights: Path, exported_model_dir: Path, vtest_path: Path, mode: str
) -> None:
    pipeline, readers, _, _, _ = _pipeline(detector_weights, exported_model_dir, vtest_path, ["cam1", "cam2"])
    driver = Driver(pipeline, mode)
    for _ in range(10):
        for reader in readers.values():
            reader.feed()
        driver.step()
    assert pipeline.buffers.track_ids("cam2")
    pipeline.remove_camera("cam2")
    readers["cam1"].feed()
    driver.step()
    driver.close()
    assert pipeline.buffers.track_ids("cam2") == []
    assert pipeline.camera_ids() == ["cam1"]
    assert [s.camera_id for s in pipeline.statuses()] == ["cam1"]


@pytest.mark.parametrize("mode", RUNTIMES)
def test_each_camera_tracker_gets_its_source_frame_rate(
    detector_weights: Path, exported_model_dir: Path, vtest_path: Path, mode: str
) -> None:
    pipeline, readers, _, _, _ = _pipeline(detector_weights, exported_model_dir, vtest_path, ["cam1"])
    assert pipeline.cameras.tracker("cam1") is None  # made at the first frame, when the rate is known
    readers["cam1"].feed()
    driver = Driver(pipeline, mode)
    driver.step()
    driver.close()
    tracker = pipeline.cameras.tracker("cam1")
    assert tracker is not None and tracker.frame_rate == 10.0  # vtest.avi's own rate, not a default


@pytest.mark.parametrize("mode", RUNTIMES)
def test_static_tracks_are_shown_but_never_sampled(
    detector_weights: Path, exported_model_dir: Path, vtest_path: Path, mode: str
) -> None:
    # The yellow cloth on the grass is a "person" from the first frame; still for 1 s, it is static.
    encoded, overlays = {}, {}
    for enabled in (False, True):
        tracker = {"static": {"enabled": enabled, "min_duration_s": 1.0}}
        pipeline, readers, _, _, sink = _pipeline(
            detector_weights, exported_model_dir, vtest_path, ["cam1"], tracker=tracker
        )
        encoded[enabled] = sum(r.crops_encoded for r in _replay(Driver(pipeline, mode), readers))
        overlays[enabled] = [t for overlay in sink.tracks for t in overlay.tracks]
    static = [t for t in overlays[True] if t.static]
    assert static and not any(t.static for t in overlays[False])
    # Only the cloth (lying on the grass, bottom left) is static, and it is still shown in the overlay: one
    # track, or two where the detector boxes it twice (at the clip's aspect, detector.rect auto on a CPU,
    # it finds the whole cloth and its upper part, the two boxes overlapping at an IoU under NMS's 0.7).
    assert len({t.track_id for t in static}) in (1, 2)
    assert all(t.bbox[0] >= 50 and t.bbox[1] >= 480 and t.bbox[2] <= 175 and t.bbox[3] <= 565 for t in static)
    # vtest.avi runs at the model's 10 fps, so every tracked box is due every frame: each static sighting
    # is exactly one crop the encoder did not see, and no other crop was skipped.
    assert encoded[False] - encoded[True] == len(static)


@pytest.mark.parametrize("mode", RUNTIMES)
def test_a_scene_cut_ends_every_track_of_the_camera(
    detector_weights: Path, exported_model_dir: Path, vtest_path: Path, tmp_path: Path, mode: str
) -> None:
    clip = write_scene_cut_clip(vtest_path, tmp_path / "cut.avi", 2.0, 4.0)  # mirrored from 2.0 s (frame 20)
    pipeline, readers, _, _, sink = _pipeline(detector_weights, exported_model_dir, clip, ["cam1"], stride=1)
    reports = _replay(Driver(pipeline, mode), readers)
    assert pipeline.scene_cuts.cuts == 1
    # One overlay per step: the first 20 frames are the first scene. No id lives on both sides of the cut.
    ids = [{t.track_id for t in overlay.tracks} for overlay in sink.tracks]
    before, after = set().union(*ids[:20]), set().union(*ids[20:])
    assert before and after and not before & after
    assert not before & set(pipeline.buffers.track_ids("cam1"))  # their buffers were freed at the cut
    # No classified window holds samples from both scenes.
    windows = [w for r in reports for w in r.windows]
    assert windows and all(w.timestamps[0] >= 2.0 - 1e-6 or w.timestamps[-1] < 2.0 - 1e-6 for w in windows)


def test_the_detector_and_the_model_are_warmed_up_before_the_first_frame(
    detector_weights: Path, exported_model_dir: Path, vtest_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="actwatch.service.stages"):
        pipeline, readers, recorder, runtime, _ = _pipeline(detector_weights, exported_model_dir, vtest_path, ["cam1"])
    warmed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("warmed up the detector")]
    assert len(warmed) == 1 and "and the action model in" in warmed[0]
    # Done while the stages were built, on the networks themselves: the pipeline has not seen a frame.
    assert recorder.batches == [] and runtime.encode_calls == 0
    readers["cam1"].feed()
    pipeline.step()
    assert recorder.batches == [1]


def test_the_window_gap_setting_reaches_the_track_buffers(
    detector_weights: Path, exported_model_dir: Path, vtest_path: Path
) -> None:
    pipeline, *_ = _pipeline(
        detector_weights, exported_model_dir, vtest_path, ["cam1"], pipeline_settings={"window_gap_s": 3.5}
    )
    assert pipeline.buffers.max_gap_s == 3.5


def test_on_the_cpu_the_pipelined_detector_takes_the_cameras_one_at_a_time(
    detector_weights: Path, exported_model_dir: Path, vtest_path: Path
) -> None:
    # detect_batch: auto resolves to 1 where the real detector runs on the CPU (this machine).
    pipeline, readers, recorder, _, _ = _pipeline(detector_weights, exported_model_dir, vtest_path, ["cam1", "cam2"])
    assert pipeline.stages.detect_batch == 1
    # frame_wait_ms: auto resolves to the CPU's wait there too (only the service's intake waits)
    assert pipeline.stages.frame_wait_s == CPU_FRAME_WAIT_MS / 1000
    runner = pipeline.staged(lossless=True)
    for reader in readers.values():
        reader.feed()
    assert [runner.submit(runner.detect_batch) for _ in range(3)] == [1, 1, 0]
    reports = runner.flush(DRAIN_TIMEOUT_S)
    runner.stop()
    pipeline.stop()
    assert recorder.batches == [1, 1] and [r.frames for r in reports] == [1, 1]
