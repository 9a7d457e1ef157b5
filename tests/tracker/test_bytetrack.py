"""CameraTracker: per-camera ids that never collide, never reset, and report ended tracks."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from actwatch.capture.frame import Frame
from actwatch.tracker.bytetrack import CameraTracker, TrackerSettings
from actwatch.tracker.detections import Detections

FPS = 10.0


def _run(tracker: CameraTracker, dets: list[Detections], frames: list[Frame]) -> list[list[int]]:
    return [tracker.update(d, f.image).track_id.tolist() for d, f in zip(dets, frames, strict=True)]


def _moving_box(step: int, x0: float = 10.0, y0: float = 20.0) -> list[float]:
    return [x0 + 4 * step, y0, x0 + 4 * step + 40, y0 + 100]


def _dets(*boxes: list[float], conf: float = 0.9) -> Detections:
    if not boxes:
        return Detections.empty()
    return Detections.from_arrays(boxes, [conf] * len(boxes), [0] * len(boxes))


def test_settings_are_strict_and_default_to_bytetrack_yaml() -> None:
    s = TrackerSettings()
    assert (s.track_high_thresh, s.track_low_thresh, s.new_track_thresh) == (0.25, 0.1, 0.25)
    assert (s.track_buffer, s.match_thresh, s.fuse_score) == (30, 0.8, True)
    with pytest.raises(ValidationError):
        TrackerSettings(track_bufer=10)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        TrackerSettings(match_thresh=2.0)
    assert all(f.description for f in TrackerSettings.model_fields.values())


def test_tracked_detections_keep_the_measured_boxes() -> None:
    tracker = CameraTracker("cam", FPS)
    for step in range(5):
        det = _dets(_moving_box(step))
        out = tracker.update(det, None)
    assert out.track_id.tolist() == [1]
    np.testing.assert_array_equal(out.xyxy, det.xyxy)  # measured box, not the Kalman estimate
    np.testing.assert_array_equal(out.confidence, det.confidence)


def test_removed_track_ids_after_the_track_buffer() -> None:
    settings = TrackerSettings(track_buffer=30)  # at 10 fps this is 10 frames (1 s)
    tracker = CameraTracker("cam", FPS, settings)
    for step in range(4):
        assert tracker.update(_dets(_moving_box(step)), None).track_id.tolist() == [1]
    assert tracker.live_track_ids == {1}
    removed_at = None
    for gap in range(1, 20):
        out = tracker.update(_dets(), None)
        assert len(out) == 0
        if tracker.removed_track_ids:
            assert tracker.removed_track_ids == (1,)
            removed_at = gap
            break
    assert removed_at is not None and 9 <= removed_at <= 12
    assert tracker.live_track_ids == frozenset()
    # A person appearing afterwards gets a new id, never a reused one.
    tracker.update(_dets(_moving_box(0, x0=300)), None)
    assert tracker.update(_dets(_moving_box(1, x0=300)), None).track_id.tolist() == [2]


def test_two_cameras_interleaved_are_independent(
    vtest_frames: list[Frame], vtest_detections: list[Detections], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = TrackerSettings(new_track_thresh=0.2)
    clip_a = (vtest_frames, vtest_detections)
    clip_b = (
        vtest_frames[::-1],
        vtest_detections[::-1],
    )  # a different clip: the same street played backwards
    solo_a = _run(CameraTracker("a", FPS, settings), clip_a[1], clip_a[0])
    solo_b = _run(CameraTracker("b", FPS, settings), clip_b[1], clip_b[0])
    assert min(i for ids in solo_a for i in ids) == 1
    assert min(i for ids in solo_b for i in ids) == 1

    from ultralytics.trackers.basetrack import BaseTrack

    # Whatever the process-wide counter holds must be left as it was (monkeypatch restores it after).
    monkeypatch.setattr(BaseTrack, "_count", 12345)
    a, b = CameraTracker("a", FPS, settings), CameraTracker("b", FPS, settings)
    got_a, got_b = [], []
    extra: list[CameraTracker] = []
    for i in range(len(vtest_frames)):
        got_a.append(a.update(clip_a[1][i], clip_a[0][i].image).track_id.tolist())
        if i == len(vtest_frames) // 2:
            # A third camera joining mid-stream, and something resetting Ultralytics' class-level
            # counter (what older releases do on every new tracker), must not disturb the others.
            extra.append(CameraTracker("c", FPS, settings))
            BaseTrack.reset_id()
            monkeypatch.setattr(BaseTrack, "_count", 12345)
        got_b.append(b.update(clip_b[1][i], clip_b[0][i].image).track_id.tolist())
    assert got_a == solo_a
    assert got_b == solo_b
    assert len({i for ids in got_a for i in ids}) >= 2, "the clip should yield several tracks"
    assert BaseTrack._count == 12345
    first = extra[0].update(vtest_detections[0], None).track_id.tolist()
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
