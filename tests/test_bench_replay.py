"""The detector's answers replayed for ``actwatch bench --replay-detections``, with the real detector."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from actwatch.bench_replay import ReplayedDetector
from actwatch.capture.video_file import read_video
from actwatch.tracker.detector import DetectorSettings, PersonDetector


def test_replayed_detections_are_the_detector_s_answers_for_the_clip(vtest_path: Path, detector_weights: Path) -> None:
    detector = PersonDetector(detector_weights, DetectorSettings(person_class_ids=[0, 1], device="cpu"))
    frames = [frame.image for frame in read_video(vtest_path, max_frames=4)]
    replayed = ReplayedDetector(detector, vtest_path, frames=3, batch=2)
    # the clip's first 3 frames come from the table, exactly as the detector found them
    for got, want in zip(replayed.detect(frames[:3]), detector.detect(frames[:3]), strict=True):
        np.testing.assert_array_equal(got.xyxy, want.xyxy)
        assert len(got) > 0
    assert replayed.misses == 0
    [fourth] = replayed.detect(frames[3:])  # a frame it was not given goes to the detector, counted
    np.testing.assert_array_equal(fourth.xyxy, detector.detect(frames[3:])[0].xyxy)
    assert replayed.misses == 1
