"""Fixtures of the tracker tests: the real serving detector (ONNX, 640) and a few vtest.avi frames."""

from __future__ import annotations

from pathlib import Path

import pytest

from actwatch.capture.frame import Frame
from actwatch.capture.video_file import read_video
from actwatch.tracker.detections import Detections
from actwatch.tracker.detector import DetectorSettings, PersonDetector

LOW_CONF = 0.1  # persons in vtest.avi are small, hence the low conf
N_FRAMES = 30


@pytest.fixture(scope="session")
def person_detector(detector_weights: Path) -> PersonDetector:
    # square inputs (detector.rect auto would fit them to the clip on the CPU): the Ultralytics references
    # and the static-track expectations of these tests are of square ones; rect has its own tests
    settings = DetectorSettings(person_class_ids=[0, 1], conf=LOW_CONF, device="cpu", rect=False)
    return PersonDetector(detector_weights, settings)


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
