"""``fallen`` on a real crop: a person from Ultralytics' bus.jpg rotated to lie on the ground of a vtest.avi
frame is classed ``Fall`` by the real detector, the same person upright ``Normal``; tracked over a few
frames by the real ByteTrack, the lying one alerts ``fallen`` and the upright one does not.

What the detector does (printed with ``-s``; measured on 8 frames): the lying person (248x66 px) is found
as class 1 (``Fall``) in every frame, confidence 0.52-0.57 rotated clockwise and 0.66-0.67 anticlockwise;
upright (66x248 px) as class 0 (``Normal``), 0.51-0.54. A small vtest.avi pedestrian (60x84 px) rotated
the same way is not detected at all, at 1x or 2x: the detector needs a lying person of some size. On
vtest.avi itself the detector classes the yellow cloth on the grass (bottom left) ``Fall`` (about 0.45).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from actwatch.capture.frame import Frame
from actwatch.capture.video_file import read_video
from actwatch.config import AlertRuleConfig
from actwatch.signals.behaviour import fallen_class_ids
from actwatch.signals.settings import SignalsSettings
from actwatch.signals.stage import SignalStage
from actwatch.tracker.bytetrack import CameraTracker
from actwatch.tracker.detections import Detections
from actwatch.tracker.detector import PersonDetector

FRAMES = 8
SCALE = 0.5
TOP_LEFT = (420, 470)  # x, y on vtest.avi's grass, clear of the cloth lying at (62, 489)-(167, 532)


def _bus_person(detector: PersonDetector) -> np.ndarray:
    import ultralytics

    image = cv2.imread(str(Path(ultralytics.__file__).parent / "assets" / "bus.jpg"))
    assert image is not None
    [det] = detector.detect([image])
    x1, y1, x2, y2 = det.xyxy[int(np.argmax(det.confidence))].astype(int)
    return image[y1:y2, x1:x2]


def _pasted(background: np.ndarray, person: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    image = background.copy()
    x, y = TOP_LEFT
    h, w = person.shape[:2]
    h, w = min(h, image.shape[0] - y), min(w, image.shape[1] - x)
    image[y : y + h, x : x + w] = person[:h, :w]
    return image, (x, y, x + w, y + h)


def _iou(a: np.ndarray, b: tuple[int, int, int, int]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _match(det: Detections, box: tuple[int, int, int, int]) -> int | None:
    ious = [_iou(row, box) for row in det.xyxy]
    return int(np.argmax(ious)) if ious and max(ious) >= 0.5 else None


@pytest.mark.parametrize(
    ("pose", "rotation"),
    [("lying", cv2.ROTATE_90_CLOCKWISE), ("lying", cv2.ROTATE_90_COUNTERCLOCKWISE), ("upright", None)],
)
def test_a_person_lying_on_the_ground_is_fallen_and_an_upright_one_is_not(
    person_detector: PersonDetector, vtest_path: Path, pose: str, rotation: int | None
) -> None:
    person = _bus_person(person_detector)
    person = cv2.rotate(person, rotation) if rotation is not None else person
    person = cv2.resize(person, None, fx=SCALE, fy=SCALE)
    backgrounds = [f for f in read_video(vtest_path, camera_id="cam1", max_frames=FRAMES)]
    pasted = [_pasted(f.image, person) for f in backgrounds]
    detections = person_detector.detect([image for image, _ in pasted])
    box = pasted[0][1]

    # The detector itself: the pasted person's box, its class and confidence, frame by frame.
    names = person_detector.class_names
    seen = []
    for det in detections:
        row = _match(det, box)
        assert row is not None, f"the pasted {pose} person was not detected"
        seen.append((names[int(det.class_id[row])], round(float(det.confidence[row]), 2)))
    print(f"{pose} person (rotation {rotation}): detector says {seen}")
    expected = "Fall" if pose == "lying" else "Normal"
    assert all(name == expected for name, _ in seen), seen

    # Through the real tracker and the signal stage: `fallen` alerts for the lying person only.
    settings = SignalsSettings()
    rule = AlertRuleConfig(label="fallen", threshold=0.6, n=3, m=5, min_track_age_s=0, cooldown_s=60)
    stage = SignalStage(settings, fallen_class_ids(settings, names), [rule])
    tracker = CameraTracker("cam1", frame_rate=10.0)
    events = []
    for frame, det in zip(backgrounds, detections, strict=True):
        tracked = tracker.update(det, frame.timestamp)
        events += [e for e in stage.update("cam1", tracked, frame) if _iou(np.array(e.bbox), box) >= 0.5]
    if pose == "lying":
        assert [e.label for e in events] == ["fallen"]
        assert events[0].score >= 0.6
    else:
        assert events == []


def test_fallen_needs_a_detector_class_for_it() -> None:
    settings = SignalsSettings()
    assert fallen_class_ids(settings, {0: "Normal", 1: "Fall"}) == (1,)
    assert fallen_class_ids(settings, {0: "person"}) == ()  # COCO: never fallen
    custom = SignalsSettings.model_validate({"fallen": {"class_ids": [3]}})
    assert fallen_class_ids(custom, {0: "person"}) == (3,)
    lying = Detections(
        np.array([[0, 0, 80, 30]], np.float32), np.array([0.9], np.float32), np.array([1]), np.array([1])
    )
    frame = Frame("cam1", 0, 0.0, 0.0, np.zeros((40, 100, 3), np.uint8))
    stage = SignalStage(settings, (), [AlertRuleConfig(label="fallen", n=1, m=1, min_track_age_s=0)])
    assert stage.update("cam1", lying, frame) == []
