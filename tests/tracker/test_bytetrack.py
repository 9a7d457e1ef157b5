"""CameraTracker: per-camera ids that never collide, never reset, report ended tracks, and count stream time."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from actwatch.capture.frame import Frame
from actwatch.config import AppConfig
from actwatch.errors import ConfigError
from actwatch.settings import validate_settings
from actwatch.tracker.bytetrack import CameraTracker, TrackerSettings
from actwatch.tracker.detections import Detections

FPS = 10.0


def _run(tracker: CameraTracker, dets: list[Detections], frames: list[Frame]) -> list[list[int]]:
    return [tracker.update(d, f.timestamp).track_id.tolist() for d, f in zip(dets, frames, strict=True)]


def _moving_box(step: int, x0: float = 10.0, y0: float = 20.0) -> list[float]:
    return [x0 + 4 * step, y0, x0 + 4 * step + 40, y0 + 100]


def _dets(*boxes: list[float], conf: float = 0.9) -> Detections:
    if not boxes:
        return Detections.empty()
    return Detections.from_arrays(boxes, [conf] * len(boxes), [0] * len(boxes))


def test_settings_are_strict_and_default_to_the_values_measured_on_vtest() -> None:
    s = TrackerSettings()
    # bytetrack.yaml's detection thresholds; new tracks, lifetime, fusion and buffering tuned on vtest.avi
    # (benchmarks/fragmentation.py): see TrackerSettings' docstring.
    assert (s.track_high_thresh, s.track_low_thresh, s.new_track_thresh) == (0.25, 0.1, 0.4)
    assert (s.lost_track_s, s.match_thresh, s.fuse_score, s.match_buffer_per_s) == (2.0, 0.8, False, 2.0)
    with pytest.raises(ValidationError):
        TrackerSettings(lost_track_z=10)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        TrackerSettings(match_thresh=2.0)
    with pytest.raises(ValidationError):
        TrackerSettings(lost_track_s=0)
    assert all(f.description for f in TrackerSettings.model_fields.values())


def test_a_frame_counted_track_buffer_is_refused_with_the_replacement() -> None:
    with pytest.raises(ConfigError) as caught:
        validate_settings(AppConfig, {"tracker": {"track_buffer": 45}}, "actwatch.yaml")
    assert "tracker: track_buffer: replaced by lost_track_s" in str(caught.value)
    assert "use lost_track_s: 1.5" in str(caught.value)


def test_tracked_detections_keep_the_measured_boxes() -> None:
    tracker = CameraTracker("cam", FPS)
    for step in range(5):
        det = _dets(_moving_box(step))
        out = tracker.update(det, step / FPS)
    assert out.track_id.tolist() == [1]
    np.testing.assert_array_equal(out.xyxy, det.xyxy)  # measured box, not the Kalman estimate
    np.testing.assert_array_equal(out.confidence, det.confidence)


def test_removed_track_ids_after_the_lost_track_lifetime() -> None:
    tracker = CameraTracker("cam", FPS, TrackerSettings(lost_track_s=1.0))  # at 10 fps: 10 frames
    for step in range(4):
        assert tracker.update(_dets(_moving_box(step)), step / FPS).track_id.tolist() == [1]
    assert tracker.live_track_ids == {1}
    removed_at = None
    for gap in range(1, 20):
        out = tracker.update(_dets(), (3 + gap) / FPS)
        assert len(out) == 0
        if tracker.removed_track_ids:
            assert tracker.removed_track_ids == (1,)
            removed_at = gap
            break
    assert removed_at is not None and 9 <= removed_at <= 12
    assert tracker.live_track_ids == frozenset()
    # Reported once: the next update has nothing more to say about track 1.
    tracker.update(_dets(_moving_box(0, x0=300)), (4 + removed_at) / FPS)
    assert tracker.removed_track_ids == ()
    # A person appearing afterwards gets a new id, never a reused one.
    assert tracker.update(_dets(_moving_box(1, x0=300)), (5 + removed_at) / FPS).track_id.tolist() == [2]


@pytest.mark.parametrize("fps", [5.0, 30.0])
def test_the_same_stream_time_gap_ends_a_track_at_any_frame_rate(fps: float) -> None:
    """``lost_track_s`` is seconds of stream time: a 5 fps and a 30 fps camera end the track alike."""
    tracker = CameraTracker("cam", fps, TrackerSettings(lost_track_s=1.5))
    n_seen = int(fps)  # one second of a person walking
    for i in range(n_seen):
        assert tracker.update(_dets(_moving_box(i)), 100.0 + i / fps).track_id.tolist() == [1]
    last_seen = 100.0 + (n_seen - 1) / fps
    ended_after = None
    for i in range(1, int(3 * fps)):
        tracker.update(_dets(), last_seen + i / fps)
        if tracker.removed_track_ids:
            assert tracker.removed_track_ids == (1,)
            ended_after = i / fps
            break
    # The first frame more than 1.5 s after the last sighting ends it, whatever the rate.
    assert ended_after is not None
    assert 1.5 < ended_after <= 1.5 + 1 / fps + 1e-9


def test_a_camera_delivering_fewer_frames_than_announced_keeps_tracks_for_the_same_time() -> None:
    """The announced rate (30) does not matter when the stream delivers 3 frames a second: time counts."""
    tracker = CameraTracker("cam", 30.0, TrackerSettings(lost_track_s=1.0))
    for i in range(3):
        assert tracker.update(_dets(_moving_box(i)), i / 3).track_id.tolist() == [1]
    tracker.update(_dets(), 1.0)  # 0.33 s unseen: kept
    tracker.update(_dets(), 1.5)  # 0.83 s: kept
    assert tracker.live_track_ids == {1} and tracker.removed_track_ids == ()
    tracker.update(_dets(), 1.7)  # 1.03 s: ended
    assert tracker.removed_track_ids == (1,)


def test_missing_or_backward_timestamps_count_one_frame_interval() -> None:
    """No timestamp, a repeated one or a clock restart (reconnect) each count as one nominal frame."""
    tracker = CameraTracker("cam", FPS, TrackerSettings(lost_track_s=0.5))
    stamps: list[float | None] = [50.0, None, 50.2, 50.2, 0.0, 0.1]  # steps of 0.1 s each, after the first
    for i, ts in enumerate(stamps):
        assert tracker.update(_dets(_moving_box(i)), ts).track_id.tolist() == [1]
    for i in range(1, 5):  # 0.4 s unseen, measured on the restarted clock (0.1 -> 0.5)
        tracker.update(_dets(), 0.1 + i / FPS)
    assert tracker.live_track_ids == {1}
    tracker.update(_dets(), 0.7)
    assert tracker.removed_track_ids == (1,)


def test_a_person_skipped_by_dropped_frames_keeps_the_id() -> None:
    """The motion model advances by the time that passed: a reader dropping frames does not break tracks."""
    tracker = CameraTracker("cam", 25.0)
    ids = []
    for t in [0, 1, 2, 3, 6, 7, 12, 13, 14, 20]:  # frames at 25 fps, with gaps of up to 6 frames
        box = [100 + 8.0 * t, 50.0, 140 + 8.0 * t, 150.0]  # 200 px/s to the right
        ids.append(tracker.update(_dets(box), t / 25.0).track_id.tolist())
    assert ids == [[1]] * len(ids)


def test_two_cameras_interleaved_are_independent(vtest_frames: list[Frame], vtest_detections: list[Detections]) -> None:
    settings = TrackerSettings(new_track_thresh=0.2)
    clip_a = (vtest_frames, vtest_detections)
    clip_b = (
        vtest_frames[::-1],
        vtest_detections[::-1],
    )  # a different clip: the same street played backwards
    solo_a = _run(CameraTracker("a", FPS, settings), clip_a[1], clip_a[0])
    times_b = [i / FPS for i in range(len(vtest_frames))]  # backwards footage, forward stream time
    solo_tracker_b = CameraTracker("b", FPS, settings)
    solo_b = [solo_tracker_b.update(d, t).track_id.tolist() for d, t in zip(clip_b[1], times_b, strict=True)]
    assert min(i for ids in solo_a for i in ids) == 1
    assert min(i for ids in solo_b for i in ids) == 1

    a, b = CameraTracker("a", FPS, settings), CameraTracker("b", FPS, settings)
    got_a, got_b = [], []
    extra: list[CameraTracker] = []
    for i in range(len(vtest_frames)):
        got_a.append(a.update(clip_a[1][i], clip_a[0][i].timestamp).track_id.tolist())
        if i == len(vtest_frames) // 2:
            # A third camera joining mid-stream and a fourth one being reset must not disturb the others.
            extra.append(CameraTracker("c", FPS, settings))
            d = CameraTracker("d", FPS, settings)
            d.update(clip_a[1][0], 0.0)
            d.reset()
        got_b.append(b.update(clip_b[1][i], times_b[i]).track_id.tolist())
    assert got_a == solo_a
    assert got_b == solo_b
    assert len({i for ids in got_a for i in ids}) >= 2, "the clip should yield several tracks"
    first = extra[0].update(vtest_detections[0], 0.0).track_id.tolist()
    assert first and sorted(first) == list(range(1, len(first) + 1))


def test_ids_keep_counting_after_reset(vtest_frames: list[Frame], vtest_detections: list[Detections]) -> None:
    tracker = CameraTracker("cam", FPS, TrackerSettings(new_track_thresh=0.2))
    before = _run(tracker, vtest_detections[:10], vtest_frames[:10])
    seen = {i for ids in before for i in ids}
    assert seen
    tracker.reset()
    assert set(tracker.removed_track_ids) >= {i for i in seen if i in before[-1]}
    after = _run(tracker, vtest_detections[10:20], vtest_frames[10:20])
    new_ids = {i for ids in after for i in ids}
    assert new_ids and min(new_ids) > max(seen)


def test_ids_are_unique_within_a_frame(vtest_frames: list[Frame], vtest_detections: list[Detections]) -> None:
    tracker = CameraTracker("cam", FPS, TrackerSettings(new_track_thresh=0.2))
    for ids in _run(tracker, vtest_detections, vtest_frames):
        assert len(ids) == len(set(ids))


def test_real_detections_keep_their_ids_across_frames(
    vtest_frames: list[Frame], vtest_detections: list[Detections]
) -> None:
    """The real detector on vtest.avi: people walking keep one id for many frames, and ids end once each."""
    tracker = CameraTracker("cam", FPS, TrackerSettings(new_track_thresh=0.2))
    frames_of: dict[int, list[int]] = {}
    ended_at: dict[int, int] = {}
    for index, (d, f) in enumerate(zip(vtest_detections, vtest_frames, strict=True)):
        for tid in tracker.update(d, f.timestamp).track_id.tolist():
            assert tid not in ended_at, f"track {tid} came back after it ended"
            frames_of.setdefault(tid, []).append(index)
        for tid in tracker.removed_track_ids:
            assert tid not in ended_at, f"track {tid} reported ended twice"
            ended_at[tid] = index
    assert frames_of, "the detector should find people in vtest.avi"
    assert max(len(v) for v in frames_of.values()) >= 10, frames_of  # one person followed for a second
    track_frames = sum(len(v) for v in frames_of.values())
    assert track_frames / len(frames_of) >= 5, frames_of  # ids persist; they are not re-issued per frame
    assert set(ended_at) <= set(frames_of)


def test_matches_ultralytics_bytetrack_on_real_detections(
    vtest_frames: list[Frame], vtest_detections: list[Detections]
) -> None:
    """The former serving tracker, where installed (the train extra), as the reference: same tracks."""
    byte_tracker = pytest.importorskip("ultralytics.trackers.byte_tracker")
    from ultralytics.utils import IterableSimpleNamespace

    from actwatch.tracker.ultralytics_env import configure_ultralytics

    configure_ultralytics()
    # ByteTrack's own matching (score fusion, plain IoU), as Ultralytics runs it.
    bytetrack = TrackerSettings(new_track_thresh=0.2, fuse_score=True, match_buffer_per_s=0.0)
    params = bytetrack.model_dump(exclude={"lost_track_s", "match_buffer_per_s", "static"})
    # 1 s at 10 fps = 10 frames; Ultralytics counts frames at its default 30 fps rate (track_buffer x 30/30).
    reference = byte_tracker.BYTETracker(IterableSimpleNamespace(tracker_type="bytetrack", track_buffer=10, **params))
    ours = CameraTracker("cam", FPS, bytetrack.model_copy(update={"lost_track_s": 1.0}))
    ours_to_theirs: dict[int, int] = {}
    for d, f in zip(vtest_detections, vtest_frames, strict=True):
        tracked = ours.update(d, f.timestamp)
        reference.update(_UltralyticsBoxes(d), None)
        theirs = {int(t.idx): int(t.track_id) for t in reference.tracked_stracks if t.is_activated}
        rows = [int(np.flatnonzero((d.xyxy == box).all(axis=1))[0]) for box in tracked.xyxy]
        assert sorted(rows) == sorted(theirs)  # the same detections are tracked
        for row, tid in zip(rows, tracked.track_id.tolist(), strict=True):
            assert ours_to_theirs.setdefault(tid, theirs[row]) == theirs[row]  # and grouped the same way
    assert len(set(ours_to_theirs.values())) == len(ours_to_theirs) >= 2


class _UltralyticsBoxes:
    """What ``BYTETracker.update`` reads from a results object."""

    def __init__(self, det: Detections | Any) -> None:
        self.xyxy, self.conf, self.cls = det.xyxy, det.confidence, det.class_id.astype(np.float32)

    @property
    def xywh(self) -> np.ndarray:
        xy = self.xyxy
        return np.stack(
            [(xy[:, 0] + xy[:, 2]) / 2, (xy[:, 1] + xy[:, 3]) / 2, xy[:, 2] - xy[:, 0], xy[:, 3] - xy[:, 1]], 1
        )

    def __len__(self) -> int:
        return len(self.conf)

    def __getitem__(self, index: Any) -> _UltralyticsBoxes:
        return _UltralyticsBoxes(
            Detections(
                self.xyxy[index], self.conf[index], self.cls[index].astype(np.int64), np.full(len(self.xyxy[index]), -1)
            )
        )


def test_the_tracker_needs_neither_torch_nor_ultralytics() -> None:
    """Serving imports the tracker: it must load in an interpreter where torch/Ultralytics cannot be imported."""
    check = textwrap.dedent(
        """
        import json, sys
        class Refuse:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "ultralytics", "torchvision"):
                    raise ImportError(f"{name} is not installed here")
        sys.meta_path.insert(0, Refuse())
        import numpy as np
        from actwatch.tracker.bytetrack import CameraTracker
        from actwatch.tracker.detections import Detections
        t = CameraTracker("cam", 10.0)
        one = Detections.from_arrays([[0, 0, 10, 20]], [0.9], [0])
        ids = [t.update(one, i / 10).track_id.tolist() for i in range(3)]
        print(json.dumps({"ids": ids, "loaded": sorted(m for m in sys.modules if "ultralytics" in m or m == "torch")}))
        """
    )
    proc = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"ids": [[1], [1], [1]], "loaded": []}
