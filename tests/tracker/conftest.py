"""Fixtures of the tracker tests: the real detector at a small input size and a few vtest.avi frames."""

from __future__ import annotations

from pathlib import Path

import pytest

from actwatch.capture.frame import Frame
from actwatch.capture.video_file import read_video
from actwatch.tracker.detections import Detections
from actwatch.tracker.detector import DetectorSettings, PersonDetector

SMALL_IMGSZ = 320  # keeps the CPU test suite fast; persons in vtest.avi are small, hence the low conf
LOW_CONF = 0.1
N_FRAMES = 30


@pytest.fixture(scope="session")
def person_detector(detector_weights: Path) -> PersonDetector:
    return PersonDetector(detector_weights, DetectorSettings(person_class_ids=[0, 1], conf=LOW_CONF, imgsz=SMALL_IMGSZ))


@pytest.fixture(scope="session")
def vtest_frames(vtest_path: Path) -> list[Frame]:
    """The first frames of vtest.avi with their container timestamps."""
    return list(read_video(vtest_path, camera_id="vtest", max_frames=N_FRAMES))


@pytest.fixture(scope="session")
def vtest_detections(person_detector: PersonDetector, vtest_frames: list[Frame]) -> list[Detections]:
    """Detections of ``vtest_frames``, computed once in batches of 5 frames."""
    out: list[Detections] = []
    for i in range(0, len(vtest_frames), 5):
        out += person_detector.detect([f.image for f in vtest_frames[i : i + 5]])
    return out
