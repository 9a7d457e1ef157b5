"""Reading video files and extracting per-person crop sequences (used by predict and training)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

from actwatch.capture.frame import Frame
from actwatch.capture.video_file import read_video, video_fps
from actwatch.errors import ActwatchError
from actwatch.tracker.bytetrack import TrackerSettings
from actwatch.tracker.detections import Detections
from actwatch.tracker.detector import PersonDetector
from actwatch.tracker.offline import TrackSequence, VideoTrackExtractor

from .videos import write_video


class ReplayDetector:
    """Replays the real detector's outputs for frames it has already seen (saves CPU in tests)."""

    def __init__(self, frames: Sequence[Frame], detections: Sequence[Detections]) -> None:
        self._by_id = {id(f.image): d for f, d in zip(frames, detections, strict=True)}
        self.calls: list[int] = []

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        self.calls.append(len(images))
        return [self._by_id[id(im)] for im in images]


def _extractor(frames: list[Frame], dets: list[Detections], **kwargs: Any) -> VideoTrackExtractor:
    detector = cast(PersonDetector, ReplayDetector(frames, dets))
    # ByteTrack's own matching (score fusion, plain IoU, 1 s lifetime): tracks without gaps on these 30 frames,
    # so resampling can be checked sample for sample.
    bytetrack = TrackerSettings(new_track_thresh=0.2, fuse_score=True, match_buffer_per_s=0.0, lost_track_s=1.0)
    kwargs.setdefault("tracker_settings", bytetrack)
    return VideoTrackExtractor(detector, crop_hw=(64, 48), **kwargs)


def test_iter_video_frames_timestamps(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi", 12, 30.0)
    frames = list(read_video(video, camera_id="x"))
    assert [f.index for f in frames] == list(range(12))
    assert all(f.camera_id == "x" and f.shape == (120, 160) for f in frames)
    np.testing.assert_allclose([f.timestamp for f in frames], np.arange(12) / 30.0, atol=2e-3)
    assert len(list(read_video(video, max_frames=5))) == 5
    assert video_fps(video) == pytest.approx(30.0)


def test_iter_vtest_frames(vtest_frames: list[Frame]) -> None:
    np.testing.assert_allclose([f.timestamp for f in vtest_frames], np.arange(len(vtest_frames)) / 10.0)
    assert vtest_frames[0].shape == (576, 768)


def test_missing_and_unreadable_videos(tmp_path: Path) -> None:
    with pytest.raises(ActwatchError, match="video not found"):
        list(read_video(tmp_path / "nothere.mp4"))
    bogus = tmp_path / "bogus.avi"
    bogus.write_text("not a video at all\n")
    with pytest.raises(ActwatchError, match=r"bogus\.avi"):
        list(read_video(bogus))


def test_extract_from_the_video_file_with_the_real_detector(person_detector: PersonDetector, vtest_path: Path) -> None:
    extractor = VideoTrackExtractor(
        person_detector, crop_hw=(64, 48), fps=10.0, tracker_settings=TrackerSettings(new_track_thresh=0.2)
    )
    sequences = list(extractor.extract(vtest_path, max_frames=16))
    assert extractor.stats.frames == 16 and extractor.stats.detections > 0
    assert sequences, "vtest.avi has pedestrians from the first frame"
    for seq in sequences:
        assert seq.crops.shape == (seq.length, 64, 48, 3) and seq.crops.dtype == np.uint8
        assert seq.crops.any(axis=(1, 2, 3)).all(), "crops of real boxes are not black"
        assert (np.diff(seq.timestamps) > 0).all()
        assert seq.frames_seen >= seq.length
    assert len({s.track_id for s in sequences}) == len(sequences)


def _check_sequences(sequences: list[TrackSequence], min_gap: float) -> None:
    for seq in sequences:
        assert len(seq.crops) == len(seq.timestamps) == len(seq.frame_indices) == len(seq.boxes)
        assert (np.diff(seq.timestamps) >= min_gap - 1e-6).all()


def test_extractor_resamples_to_the_target_fps(vtest_frames: list[Frame], vtest_detections: list[Detections]) -> None:
    full = list(_extractor(vtest_frames, vtest_detections, fps=10.0).extract_frames(vtest_frames, 10.0))
    half = list(_extractor(vtest_frames, vtest_detections, fps=5.0).extract_frames(vtest_frames, 10.0))
    _check_sequences(full, 0.1)
    _check_sequences(half, 0.2)
    by_id_full = {s.track_id: s for s in full}
    for seq in half:  # the same tracks, every other sample
        ref = by_id_full[seq.track_id]
        assert seq.frames_seen == ref.frames_seen
        assert ref.length // 2 <= seq.length <= ref.length // 2 + 1


def test_extractor_batches_the_detector_calls(vtest_frames: list[Frame], vtest_detections: list[Detections]) -> None:
    extractor = _extractor(vtest_frames, vtest_detections, batch_size=4)
    list(extractor.extract_frames(vtest_frames[:10], 10.0))
    assert cast(ReplayDetector, extractor.detector).calls == [4, 4, 2]


def test_max_persons_and_min_confidence(vtest_frames: list[Frame], vtest_detections: list[Detections]) -> None:
    extractor = _extractor(vtest_frames, vtest_detections, max_persons=1)
    sequences = list(extractor.extract_frames(vtest_frames, 10.0))
    per_frame = Counter(int(i) for s in sequences for i in s.frame_indices)
    assert per_frame and max(per_frame.values()) == 1
    strict = _extractor(vtest_frames, vtest_detections, min_confidence=0.5)
    list(strict.extract_frames(vtest_frames, 10.0))
    expected = sum(int((d.confidence >= 0.5).sum()) for d in vtest_detections)
    assert strict.stats.detections == expected


def test_long_tracks_split_into_segments_and_short_ones_dropped(
    vtest_frames: list[Frame], vtest_detections: list[Detections]
) -> None:
    whole = list(_extractor(vtest_frames, vtest_detections).extract_frames(vtest_frames, 10.0))
    longest = max(whole, key=lambda s: s.length)
    assert longest.length > 6
    split = list(_extractor(vtest_frames, vtest_detections, max_samples_per_track=5).extract_frames(vtest_frames, 10.0))
    parts = sorted((s for s in split if s.track_id == longest.track_id), key=lambda s: s.segment)
    assert [p.segment for p in parts] == list(range(len(parts)))
    assert all(p.length == 5 for p in parts[:-1])
    np.testing.assert_array_equal(np.concatenate([p.timestamps for p in parts]), longest.timestamps)
    shortest = min(s.length for s in whole)
    picky = _extractor(vtest_frames, vtest_detections, min_samples=shortest + 1)
    kept = list(picky.extract_frames(vtest_frames, 10.0))
    assert all(s.length > shortest for s in kept)
    assert picky.stats.dropped_short >= 1
