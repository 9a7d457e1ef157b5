"""The pipelined runtime's own parts, with fakes for the models (the real ones are in test_pipeline.py):
bounded queues that drop the oldest work but never a control message, the event writer that drops
evidence before events, stale frames dropped before detection, and the service's intake thread.

Every wait is on the condition the test checks (a flush marker through every stage, an event the slow
sink releases), never on a sleep.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Mapping, Sequence

import numpy as np
import pytest

from actwatch.capture.frame import Frame
from actwatch.capture.handoff import DropOldestQueue
from actwatch.capture.reader import CameraState, CameraStatus
from actwatch.capture.sources import SourceSpec
from actwatch.config import CameraConfig
from actwatch.model.config import InputSpec
from actwatch.priority import PER_THREAD_NICENESS, current_niceness
from actwatch.service.alerts import AlertEngine
from actwatch.service.camera_set import Reader as ReaderLike
from actwatch.service.event_writer import EventWriter
from actwatch.service.events import AlertRecord, Event, FrameOverlay
from actwatch.service.metrics import ServiceMetrics
from actwatch.service.phases import CameraRemoved, StepReport
from actwatch.service.pipeline import StreamPipeline
from actwatch.service.staged import StageQueue
from actwatch.service.stages import Detector, Stages
from actwatch.tracker.buffers import TrackBufferStore
from actwatch.tracker.bytetrack import CameraTracker
from actwatch.tracker.detections import Detections
from tests.support.due_frames import INTERVAL_S, Reader
from tests.support.polling import wait_until

WAIT_S = 120.0  # bounds a broken build's hang; never what a test asserts


class CountingDetector:
    def __init__(self) -> None:
        self.images = 0

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        self.images += len(images)
        return [Detections.empty() for _ in images]


class Runtime:
    classes, spec, supports_feature_cache = ["walking"], InputSpec(seq_len=4, input_size=(32, 32)), True


class Replay:
    def __init__(self, camera_id: str, frames: list[Frame]) -> None:
        self.source, self.frame_rate = SourceSpec.parse("rtsp://cam.local/1"), 10.0
        self.frames: DropOldestQueue[Frame] = DropOldestQueue(maxsize=len(frames) + 1)
        for frame in frames:
            self.frames.put(frame)

    def start(self) -> None:
        pass

    def stop(self, timeout: float = 0.0) -> None:
        pass

    def status(self) -> CameraStatus:
        return CameraStatus("cam1", "rtsp://cam.local/1", CameraState.STREAMING, None, 0, 0, 0.0, 0, None)


class NullSink:
    def emit_event(self, alert: AlertRecord) -> None:
        pass

    def emit_tracks(self, overlay: FrameOverlay, image: np.ndarray | None = None) -> None:
        pass


def _frame(camera_id: str, index: int, wall_time: float) -> Frame:
    return Frame(camera_id, index, index / 10, wall_time, np.zeros((48, 64, 3), np.uint8))


def _cameras(detector: Detector, replays: Mapping[str, ReaderLike], **settings: object) -> StreamPipeline:
    parts: dict[str, object] = {
        "sink": NullSink(),
        "buffers": TrackBufferStore(Runtime.spec),
        "runtime": Runtime(),
        "tracker_factory": CameraTracker,
        **settings,
    }
    stages = Stages(
        reader_factory=lambda camera: replays[camera.id],
        detector=detector,
        alerts=AlertEngine([], ["walking"]),
        metrics=ServiceMetrics(),
        **parts,  # type: ignore[arg-type]
    )
    pipeline = StreamPipeline(stages)
    for camera_id in replays:
        pipeline.add_camera(CameraConfig(id=camera_id, url="rtsp://cam.local/1"))
    return pipeline


def _pipeline(replay: Replay, detector: Detector, **settings: object) -> StreamPipeline:
    return _cameras(detector, {"cam1": replay}, **settings)


def test_a_stage_queue_drops_the_oldest_work_but_never_a_control_message() -> None:
    queue: StageQueue[int] = StageQueue("detected", maxsize=2, drop_oldest=True)
    queue.put(1)
    queue.put(CameraRemoved("cam1"))
    for item in (2, 3, 4):
        queue.put(item)
    assert queue.drops == 2
    assert [queue.get() for _ in range(3)] == [CameraRemoved("cam1"), 3, 4]


def test_a_blocking_stage_queue_makes_the_producer_wait_for_room() -> None:
    queue: StageQueue[int] = StageQueue("tracked", maxsize=1, drop_oldest=False)
    queue.put(1)
    second_put = threading.Thread(target=queue.put, args=(2,))
    second_put.start()
    assert wait_until(lambda: len(queue) == 1 and second_put.is_alive(), WAIT_S)
    assert queue.get() == 1
    second_put.join(WAIT_S)
    assert queue.get() == 2 and queue.drops == 0


def test_the_event_writer_drops_evidence_under_back_pressure_never_an_event() -> None:
    release = threading.Event()
    written: list[tuple[str, bool]] = []

    class SlowSink(NullSink):
        def emit_event(self, alert: AlertRecord) -> None:
            release.wait(WAIT_S)  # the store is stuck until the test says so
            written.append((alert.event.id, alert.frame_bgr is not None))

    writer = EventWriter(SlowSink(), max_pending_evidence=2)
    image = np.zeros((8, 8, 3), np.uint8)
    ids = [f"ev{i}" for i in range(6)]
    for event_id in ids:
        writer.emit_event(AlertRecord(Event("cam1", 1, "fall", 0.9, 0.0, 1.0, (0, 0, 1, 1), id=event_id), image, None))
    release.set()
    assert writer.flush(WAIT_S)
    writer.close()
    assert [event_id for event_id, _ in written] == ids  # every event, in order
    # The first may have been taken before the queue filled; at most 2 others wait with evidence.
    assert sum(with_evidence for _, with_evidence in written) <= 3
    assert writer.evidence_dropped == sum(not with_evidence for _, with_evidence in written) >= 3


def test_frames_older_than_the_age_limit_are_dropped_before_detection() -> None:
    now = time.time()
    replay = Replay("cam1", [_frame("cam1", 0, now - 60.0)])
    detector = CountingDetector()
    pipeline = _pipeline(replay, detector, max_frame_age_s=5.0)
    runner = pipeline.staged(lossless=False)
    assert runner.submit() == 1
    assert runner.flush(WAIT_S) == []  # nothing reached the end: the one frame was too old
    counters = runner.counters()
    runner.stop()
    assert detector.images == 0 and counters.stale == 1


def test_the_service_runtime_takes_frames_by_itself_and_drains_on_stop(caplog: pytest.LogCaptureFixture) -> None:
    now = time.time()
    replay = Replay("cam1", [_frame("cam1", i, now) for i in range(3)])
    replay.frames.close()  # the end of the stream, after the frames
    detector = CountingDetector()
    reports: list[StepReport] = []
    pipeline = _pipeline(replay, detector, max_frame_age_s=None, detect_batch=1)
    with caplog.at_level(logging.INFO, logger="actwatch.service.pipeline"):
        pipeline.start(on_report=reports.append)
    assert "pipelined: at most 1 frame(s) per detector call, detector niceness 0" in caplog.text
    assert pipeline.ready()
    assert wait_until(pipeline.all_ended, WAIT_S)  # the intake thread took every frame and the END
    pipeline.stop(WAIT_S)  # the end sentinel passes every stage, so what was taken is finished
    assert not pipeline.ready()
    # The reader held three frames at once: the intake takes the newest and counts the others skipped.
    assert sum(r.frames for r in reports) == detector.images >= 1
    assert pipeline.runner is not None and pipeline.runner.counters().failures == 0


def test_the_sequential_setting_keeps_the_one_thread_loop() -> None:
    replay = Replay("cam1", [_frame("cam1", 0, time.time())])
    replay.frames.close()
    detector = CountingDetector()
    reports: list[StepReport] = []
    pipeline = _pipeline(replay, detector, runtime_mode="sequential")
    pipeline.start(on_report=reports.append)
    assert wait_until(pipeline.all_ended, WAIT_S)
    pipeline.stop(WAIT_S)
    assert pipeline.runner is None and [r.frames for r in reports] == [1] and detector.images == 1


class RecordingDetector:
    """Records, for every call, the cameras of its frames and the niceness of the thread that called."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.niceness: set[int] = set()

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        self.calls.append(tuple(f"cam{int(image[0, 0, 0])}" for image in images))
        self.niceness.add(current_niceness())
        return [Detections.empty() for _ in images]


def _camera_frames(camera: int, count: int) -> Replay:
    frames = []
    for i in range(count):
        frame = _frame(f"cam{camera}", i, time.time())
        frame.image[0, 0, 0] = camera  # the detector tells the cameras apart by this pixel
        frames.append(frame)
    return Replay(f"cam{camera}", frames)


def test_a_detect_batch_of_one_takes_the_cameras_in_turn_and_leaves_the_others_frames_waiting() -> None:
    replays = {"cam1": _camera_frames(1, 2), "cam2": _camera_frames(2, 1)}
    detector = RecordingDetector()
    pipeline = _cameras(detector, replays, detect_batch=1)
    runner = pipeline.staged(lossless=True)
    assert runner.detect_batch == 1
    assert [runner.submit(runner.detect_batch) for _ in range(3)] == [1, 1, 0]
    reports = runner.flush(WAIT_S)
    runner.stop()
    # One frame per call, every camera served before any is served again; cam1's older frame was
    # replaced by its newest while it waited (counted as skipped), cam2's single frame was never lost.
    assert detector.calls == [("cam1",), ("cam2",)] and [r.frames for r in reports] == [1, 1]
    assert len(replays["cam1"].frames) == len(replays["cam2"].frames) == 0


def test_without_a_batch_limit_every_camera_s_newest_frame_goes_in_one_call() -> None:
    replays = {"cam1": _camera_frames(1, 1), "cam2": _camera_frames(2, 1)}
    detector = RecordingDetector()
    runner = _cameras(detector, replays).staged(lossless=True)
    assert runner.submit(runner.detect_batch) == 2
    runner.flush(WAIT_S)
    runner.stop()
    assert detector.calls == [("cam1", "cam2")]


@pytest.mark.skipif(not PER_THREAD_NICENESS, reason="per-thread niceness is Linux's")
def test_the_detect_phase_runs_at_its_niceness_and_the_others_do_not() -> None:
    replays = {"cam1": _camera_frames(1, 1)}
    detector = RecordingDetector()
    base = current_niceness()
    niceness_of_later_phases: list[int] = []

    class Sink(NullSink):
        def emit_tracks(self, overlay: FrameOverlay, image: np.ndarray | None = None) -> None:
            niceness_of_later_phases.append(current_niceness())  # called by the alert phase

    pipeline = _cameras(detector, replays, detect_niceness=base + 6, sink=Sink())
    runner = pipeline.staged(lossless=True)
    runner.submit()
    runner.flush(WAIT_S)
    runner.stop()
    assert detector.niceness == {base + 6} and niceness_of_later_phases == [base]


class PersonsDetector:
    """Six persons side by side in every frame."""

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        boxes = [[2 + 10 * i, 4, 10 + 10 * i, 40] for i in range(6)]
        return [Detections.from_arrays(boxes, [0.9] * 6, [0] * 6) for _ in images]


class EncodingRuntime(Runtime):
    def encode(self, crops: np.ndarray) -> np.ndarray:
        return np.zeros((len(crops), 8), np.float32)

    def classify(self, features: np.ndarray) -> np.ndarray:
        return np.full((len(features), 1), 1.0, np.float32)


def test_windows_evicted_for_memory_are_told_once_a_minute_with_the_setting_to_raise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    one_track = TrackBufferStore(Runtime.spec, feature_dim=8).track_nbytes()
    buffers = TrackBufferStore(Runtime.spec, max_total_mb=3 * one_track / 2**20)  # 3 of the 6 tracks fit
    replay = Replay("cam1", [_frame("cam1", i, time.time()) for i in range(3)])
    replay.frames.close()
    pipeline = _pipeline(replay, PersonsDetector(), buffers=buffers, runtime=EncodingRuntime())
    with caplog.at_level(logging.WARNING, logger="actwatch.service.phases"):
        for _ in range(3):
            pipeline.step()
    pipeline.stop(WAIT_S)
    warnings = [r.getMessage() for r in caplog.records if "evicted for memory" in r.getMessage()]
    assert buffers.evicted["memory"] >= 3
    assert len(warnings) == 1  # the later evictions of the same minute are not told again
    assert "raise pipeline.buffer_mb_per_camera or pipeline.max_buffer_mb" in warnings[0]


def test_the_service_intake_waits_for_a_frame_due_soon_and_detects_that_one() -> None:
    reader = Reader("cam1")
    reader.put(0, age_s=INTERVAL_S - 20)  # the camera's next frame is due in 20 s, within the wait
    indices: list[int] = []

    class Detector:
        def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
            indices.extend(int(image[0, 0, 0]) for image in images)
            return [Detections.empty() for _ in images]

    pipeline = _cameras(Detector(), {"cam1": reader}, detect_batch=1, frame_wait_s=INTERVAL_S, max_frame_age_s=None)
    pipeline.start()
    try:
        assert reader.queue.waiting.wait(WAIT_S)
        reader.put(1, age_s=0.0)
        assert wait_until(lambda: bool(indices), WAIT_S)
        runner = pipeline.runner
        assert runner is not None
    finally:
        pipeline.stop()
    # The detector took the frame that came during the wait, not the one that was waiting before it
    assert indices == [1] and 0 < runner.counters().frame_waited_s < INTERVAL_S


def test_a_camera_disabled_and_enabled_again_keeps_its_zone_when_its_removal_passes() -> None:
    replay = Replay("cam1", [_frame("cam1", 0, time.time())])
    pipeline = _pipeline(replay, CountingDetector())
    zoned = CameraConfig(id="cam1", url="rtsp://cam.local/1", zone=[[0, 0], [30, 0], [30, 30]])
    pipeline.update_camera(zoned)
    runner = pipeline.staged(lossless=True)
    pipeline.remove_camera("cam1")  # disabled ...
    pipeline.add_camera(zoned)  # ... and enabled again before the removal went through the phases
    runner.submit()  # the removal, then the camera's frame
    runner.flush(WAIT_S)
    runner.stop()
    assert pipeline.alerts.zone("cam1") == [(0.0, 0.0), (30.0, 0.0), (30.0, 30.0)]


class GatedDetector:
    """Holds every call until the test opens the gate of its frame; records each call's (camera, frame)
    and the most calls that ran at once."""

    def __init__(self) -> None:
        self.entered = threading.Semaphore(0)
        self.gates: dict[tuple[int, int], threading.Event] = collections.defaultdict(threading.Event)
        self.calls: list[tuple[int, int]] = []
        self.most_at_once = 0
        self._running = 0
        self._lock = threading.Lock()

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        keys = [(int(image[0, 0, 1]), int(image[0, 0, 0])) for image in images]  # (camera, frame index)
        with self._lock:
            self.calls += keys
            self._running += 1
            self.most_at_once = max(self.most_at_once, self._running)
        self.entered.release()
        for key in keys:
            self.gates[key].wait(WAIT_S)
        with self._lock:
            self._running -= 1
        return [Detections.empty() for _ in images]


class RecordingTracker(CameraTracker):
    """A camera's real tracker that records the stream time of every frame it is given."""

    def __init__(self, camera_id: str, frame_rate: float, seen: dict[str, list[float]]) -> None:
        super().__init__(camera_id, frame_rate=frame_rate)
        self.seen = seen.setdefault(camera_id, [])

    def update(self, detections: Detections, timestamp: float | None = None) -> Detections:
        self.seen.append(timestamp or 0.0)
        return super().update(detections, timestamp)


def test_two_detect_workers_run_side_by_side_and_keep_each_camera_s_frames_in_order() -> None:
    readers = {f"cam{c}": Reader(f"cam{c}") for c in (1, 2)}

    def put(camera: int, index: int) -> None:
        readers[f"cam{camera}"].put(index, age_s=0.0)
        readers[f"cam{camera}"].queue.newest().image[0, 0, 1] = camera  # type: ignore[union-attr]

    detector = GatedDetector()
    seen: dict[str, list[float]] = {}

    def tracker(camera_id: str, frame_rate: float) -> CameraTracker:
        return RecordingTracker(camera_id, frame_rate, seen)

    pipeline = _cameras(detector, readers, detect_batch=1, detect_workers=2, tracker_factory=tracker)
    runner = pipeline.staged(lossless=True)
    put(1, 0)
    put(2, 0)
    assert runner.submit(1) == 1 and runner.submit(1) == 1
    assert detector.entered.acquire(timeout=WAIT_S) and detector.entered.acquire(timeout=WAIT_S)
    assert detector.most_at_once == 2  # both frames in the detector at once, neither released yet
    put(1, 1)
    assert runner.submit(1) == 0  # cam1's next frame waits: its previous one is still being detected
    detector.gates[(1, 0)].set()
    assert runner.wait_for_detector(WAIT_S)  # the worker that had cam1's frame is free again...
    assert runner.submit(1) == 1  # ...and cam1 with it (released before the worker is)
    assert detector.entered.acquire(timeout=WAIT_S)
    for key in ((2, 0), (1, 1)):
        detector.gates[key].set()
    reports = runner.flush(WAIT_S)  # the flush marker passed the detect phase after every batch before it
    runner.stop()
    assert sorted(detector.calls) == [(1, 0), (1, 1), (2, 0)] and len(reports) == 3
    assert seen == {"cam1": [0.0, INTERVAL_S], "cam2": [0.0]}
    assert not any(t.is_alive() for t in runner._threads)  # the end sentinel went round both workers


def test_detect_workers_is_auto_or_a_number_of_threads() -> None:
    from actwatch.config.pipeline import PipelineConfig
    from actwatch.errors import ConfigError
    from actwatch.settings import validate_settings

    assert PipelineConfig().detect_workers == "auto" and PipelineConfig(detect_workers=2).detect_workers == 2
    with pytest.raises(ConfigError, match="must be 'auto' or a number of threads from 1 to 64, got 0"):
        validate_settings(PipelineConfig, {"detect_workers": 0}, "test")


def test_a_batch_dropped_before_the_detect_workers_lets_its_camera_go_again() -> None:
    """A batch the frames queue drops (a newer one came while every worker was busy) never reached the
    detector: its camera's next frame is taken as usual, not held back as if it were being detected."""
    readers = {f"cam{c}": Reader(f"cam{c}") for c in (1, 2, 3, 4)}

    def put(camera: int, index: int) -> None:
        readers[f"cam{camera}"].put(index, age_s=0.0)
        readers[f"cam{camera}"].queue.newest().image[0, 0, 1] = camera  # type: ignore[union-attr]

    detector = GatedDetector()
    runner = _cameras(detector, readers, detect_batch=1, detect_workers=2, max_frame_age_s=None).staged(lossless=False)
    for camera in (1, 2, 3, 4):
        put(camera, 0)
    for _ in range(2):  # cam1 and cam2 fill both workers (each submitted once a worker is free)
        assert runner.wait_for_detector(WAIT_S) and runner.submit(1) == 1
        assert detector.entered.acquire(timeout=WAIT_S)
    assert runner.submit(1) == 1 and runner.submit(1) == 1  # cam3's batch waits, then cam4's replaces it
    assert runner.frames.drops == 1
    detector.gates[(1, 0)].set()  # cam1 done: its worker takes cam4's batch
    assert detector.entered.acquire(timeout=WAIT_S)
    put(3, 1)
    assert runner.submit(1) == 1  # cam3 is free again: its dropped batch never reached the detector
    for key in ((2, 0), (4, 0), (3, 1)):
        detector.gates[key].set()
    runner.flush(WAIT_S)
    runner.stop()
    assert runner.frames.drops == 1
    assert sorted(detector.calls) == [(1, 0), (2, 0), (3, 1), (4, 0)]
