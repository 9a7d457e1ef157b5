"""The static rule on real footage: the yellow cloth on vtest.avi's grass is static, walkers are not."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from actwatch.capture.frame import Frame
from actwatch.capture.video_file import read_video
from actwatch.settings import ConfigError, validate_settings
from actwatch.tracker.bytetrack import CameraTracker, TrackerSettings
from actwatch.tracker.detections import Detections
from actwatch.tracker.detector import PersonDetector
from actwatch.tracker.static import (
    StaticSettings,
    StaticTrackFilter,
    StaticTracks,
    box_motion,
    box_motions,
    box_thumbnails,
    crop_thumbnail,
    is_static_sequence,
)

CLOTH = (60.0, 485.0, 170.0, 535.0)  # where the cloth lies in vtest.avi, all clip long


def _inside(box: np.ndarray, area: tuple[float, float, float, float]) -> bool:
    return bool(box[0] >= area[0] and box[1] >= area[1] and box[2] <= area[2] and box[3] <= area[3])


@pytest.fixture(scope="module")
def stretch(vtest_path: Path, person_detector: PersonDetector) -> list[tuple[Frame, Detections]]:
    """4.2 s of vtest.avi from 44 s (the cloth and persons walking), every 2nd frame (5 fps), detected."""
    frames = list(read_video(vtest_path, start=44.0, max_frames=43))[::2]
    out: list[tuple[Frame, Detections]] = []
    for i in range(0, len(frames), 4):
        chunk = frames[i : i + 4]
        out += zip(chunk, person_detector.detect([f.image for f in chunk]), strict=True)
    return out


def _track_and_flag(
    stretch: list[tuple[Frame, Detections]], settings: StaticSettings
) -> dict[int, list[tuple[np.ndarray, bool, np.ndarray, float]]]:
    """Per track id: (box, static flag, thumbnail, time) of every frame it was tracked in."""
    tracker = CameraTracker("vtest", frame_rate=5.0)
    tracks = StaticTracks(settings)
    seen: dict[int, list[tuple[np.ndarray, bool, np.ndarray, float]]] = {}
    for frame, dets in stretch:
        tracked = tracker.update(dets, frame.timestamp)
        tracks.end_tracks("vtest", tracker.removed_track_ids)
        flags = tracks.flags("vtest", frame.image, tracked, frame.timestamp)
        thumbs = box_thumbnails(frame.image, tracked.xyxy)
        for box, tid, flag, thumb in zip(tracked.xyxy, tracked.track_id.tolist(), flags, thumbs, strict=True):
            seen.setdefault(tid, []).append((box, bool(flag), thumb, frame.timestamp))
    return seen


def test_the_cloth_is_static_and_walkers_are_not(stretch: list[tuple[Frame, Detections]]) -> None:
    seen = _track_and_flag(stretch, StaticSettings())
    cloth = [tid for tid, rows in seen.items() if all(_inside(box, CLOTH) for box, *_ in rows)]
    assert len(cloth) == 1, f"the cloth should be one track, got {cloth}"
    flags = [flag for _, flag, _, t in seen[cloth[0]]]
    times = [t for *_, t in seen[cloth[0]]]
    # Not before it was seen still for min_duration_s (3 s), and from then on at every frame.
    assert not any(f for f, t in zip(flags, times, strict=True) if t - times[0] < 3.0 - 1e-6)
    assert all(f for f, t in zip(flags, times, strict=True) if t - times[0] >= 3.0 - 1e-6)
    # Every other track is a real person walking through (one of them for 3 s or more): never static.
    persons = {tid: rows for tid, rows in seen.items() if tid not in cloth}
    assert any(rows[-1][3] - rows[0][3] >= 3.0 for rows in persons.values())
    assert not any(flag for rows in persons.values() for _, flag, *_ in rows)
    # The offline rule (extraction) agrees on the whole tracks.
    settings = StaticSettings()
    for tid, rows in seen.items():
        boxes = np.stack([r[0] for r in rows])
        thumbs = [r[2] for r in rows]
        times_ = np.asarray([r[3] for r in rows])
        assert is_static_sequence(boxes, thumbs, times_, settings) == (tid in cloth), tid


def test_disabled_flags_nothing(stretch: list[tuple[Frame, Detections]]) -> None:
    seen = _track_and_flag(stretch, StaticSettings(enabled=False))
    assert seen and not any(flag for rows in seen.values() for _, flag, *_ in rows)


def test_a_changing_crop_is_not_static_even_if_the_box_stays() -> None:
    rule = StaticTrackFilter(StaticSettings(min_duration_s=1.0))
    box = np.array([10.0, 10.0, 50.0, 90.0])
    flags = [rule.update(1, box, np.full((16, 16), 0.1 * (i % 2), np.float32), i / 4) for i in range(12)]
    assert not any(flags)


def test_a_track_that_ends_forgets_its_history() -> None:
    rule = StaticTrackFilter(StaticSettings(min_duration_s=1.0))
    box, thumb = np.array([10.0, 10.0, 50.0, 90.0]), np.zeros((16, 16), np.float32)
    assert [rule.update(4, box, thumb, t) for t in (0.0, 0.5, 1.0)] == [False, False, True]
    rule.end(4)
    assert rule.track_count == 0
    assert rule.update(4, box, thumb, 1.5) is False


def test_memory_is_bounded_at_any_frame_rate() -> None:
    rule = StaticTrackFilter(StaticSettings(min_duration_s=1.0))
    box, thumb = np.array([10.0, 10.0, 50.0, 90.0]), np.zeros((16, 16), np.float32)
    for i in range(1000):
        rule.update(1, box, thumb, i / 100)  # 100 fps for 10 s
    assert len(rule._tracks[1]) <= 32


def test_thumbnail_is_grey_and_small() -> None:
    crop = np.zeros((80, 40, 3), np.uint8)
    crop[:40] = 255
    thumb = crop_thumbnail(crop)
    assert thumb.shape == (16, 16) and thumb.dtype == np.float32
    assert thumb[:8].min() == 1.0 and thumb[8:].max() == 0.0


def test_static_settings_are_part_of_the_tracker_settings() -> None:
    settings = validate_settings(TrackerSettings, {"static": {"min_duration_s": 5}}, "actwatch.yaml")
    assert settings.static.min_duration_s == 5.0 and settings.static.enabled
    with pytest.raises(ConfigError, match=r"static\.max_crop_change"):
        validate_settings(TrackerSettings, {"static": {"max_crop_change": 2}}, "actwatch.yaml")


def test_box_motions_is_box_motion_for_each_box() -> None:
    rng = np.random.default_rng(0)
    boxes = rng.uniform(0, 100, (50, 4))
    boxes[:, 2:] += boxes[:, :2]
    box = boxes[0] + rng.normal(0, 2, 4)
    assert box_motions(boxes, box).tolist() == [box_motion(b, box) for b in boxes]


def test_box_thumbnails_are_crop_thumbnail_of_each_box() -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    boxes = np.array([[10, 10, 50, 90], [100, 5, 150, 60], [0, 0, 160, 120]], np.float32)
    thumbs = box_thumbnails(image, boxes)
    for thumb, (x1, y1, x2, y2) in zip(thumbs, boxes.astype(int), strict=True):
        np.testing.assert_array_equal(
            thumb, crop_thumbnail(cv2.resize(image[y1:y2, x1:x2], (16, 16), interpolation=cv2.INTER_AREA))
        )
    assert box_thumbnails(image, np.zeros((0, 4))).shape == (0, 16, 16)


def test_a_long_still_history_is_kept_in_order_past_its_first_arrays() -> None:
    # 100 fps for 10 s: the kept sightings move to the front of their arrays many times
    rule = StaticTrackFilter(StaticSettings(min_duration_s=1.0))
    box, thumb = np.array([10.0, 10.0, 50.0, 90.0]), np.zeros((16, 16), np.float32)
    flags = [rule.update(1, box, thumb, i / 100) for i in range(1000)]
    assert not any(flags[:100]) and all(flags[100:])
    history = rule._tracks[1]
    times = history.times[history.start : history.end]
    assert (np.diff(times) > 0).all() and times[0] <= 9.99 - 1.0 < times[1]
    # one sighting that moved more than max_box_motion, however far back in the span, makes it not static
    assert rule.update(1, box + np.array([0.0, 0.0, 0.0, 30.0]), thumb, 10.0) is False
