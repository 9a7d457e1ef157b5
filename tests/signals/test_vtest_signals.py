"""``loitering`` and ``running`` on real footage: the first 20 s of vtest.avi through the real detector and
the real ByteTrack, processed at 5 fps (every second frame, as a CPU keeps up), then the signals and
their rules.

What the clip holds (measured on all of it, and the reason for the figures below): two people stand
and talk by the lamp post at the start; one of them stays over 15 s in the zone around it (one track
with the default tracker), another stops to talk right of the sign and passes 10 s there at 16 s.
Nobody runs: walking speeds are 0.41 body heights per second (median), 0.8
(90th percentile), 1.24 (fastest).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from actwatch.capture.frame import Frame
from actwatch.capture.video_file import read_video
from actwatch.config import AlertRuleConfig
from actwatch.demo import VTEST_ZONE
from actwatch.service.events import Event
from actwatch.signals.behaviour import fallen_class_ids
from actwatch.signals.settings import SignalsSettings
from actwatch.signals.stage import SignalStage
from actwatch.tracker.bytetrack import CameraTracker
from actwatch.tracker.detections import Detections
from actwatch.tracker.detector import PersonDetector

SECONDS = 20.0
EVERY = 2  # every second frame of the 10 fps clip: 5 fps processed
GRASS = ((200, 330), (380, 330), (380, 470), (200, 470))  # empty lawn: people only cross it, if at all


@dataclass(frozen=True)
class _Step:
    frame: Frame  # the image is dropped: the signals need none
    detections: Detections


@pytest.fixture(scope="module")
def vtest_steps(person_detector: PersonDetector, vtest_path: Path) -> list[_Step]:
    frames = [f for f in read_video(vtest_path, camera_id="vtest") if f.timestamp < SECONDS][::EVERY]
    steps: list[_Step] = []
    for i in range(0, len(frames), 5):
        batch = frames[i : i + 5]
        for frame, det in zip(batch, person_detector.detect([f.image for f in batch]), strict=True):
            small = Frame(frame.camera_id, frame.index, frame.timestamp, frame.wall_time, np.zeros((1, 1, 3), np.uint8))
            steps.append(_Step(small, det))
    return steps


def _events(
    steps: Sequence[_Step],
    signals: dict[str, object],
    rules: list[AlertRuleConfig],
    zone: Sequence[tuple[int, int]] | None,
    speed_up: float = 1.0,
) -> list[Event]:
    """Track ``steps`` (timestamps divided by ``speed_up``) and run the signal stage over them."""
    settings = SignalsSettings.model_validate(signals)
    stage = SignalStage(settings, fallen_class_ids(settings, {0: "Normal", 1: "Fall"}), rules)
    stage.set_zone("vtest", zone)
    tracker = CameraTracker("vtest", frame_rate=10.0 / EVERY * speed_up)
    events: list[Event] = []
    for step in steps:
        f = step.frame
        # Stream time and wall time both sped up, so cooldowns and ages scale with the motion.
        frame = Frame(f.camera_id, f.index, f.timestamp / speed_up, f.timestamp / speed_up, f.image)
        events += stage.update("vtest", tracker.update(step.detections, frame.timestamp), frame)
    return events


LOITER = [AlertRuleConfig(label="loitering", threshold=1.0, n=1, m=1, cooldown_s=600, min_track_age_s=0)]
RUN = [AlertRuleConfig(label="running", threshold=1.0, n=3, m=5, cooldown_s=600, min_track_age_s=1)]


def test_loitering_fires_for_the_person_who_stays_in_the_zone(vtest_steps: list[_Step]) -> None:
    events = _events(vtest_steps, {"loitering": {"min_dwell_s": 10}}, LOITER, VTEST_ZONE)
    assert events and {e.label for e in events} == {"loitering"}
    first = min(events, key=lambda e: e.frame_time)
    x1, _, x2, y2 = first.bbox
    assert 330 <= (x1 + x2) / 2 <= 460 and 200 <= y2 <= 310  # the first is the person by the lamp post
    assert 10.0 <= first.frame_time <= 15.0  # stream seconds: 10 s after entering
    # With the tracker keeping them as one track, that person stays over 15 s; a second person who
    # stops to talk right of the sign passes 10 s later (16 s). Only the first stays 15 s.
    longest = _events(vtest_steps, {"loitering": {"min_dwell_s": 15}}, LOITER, VTEST_ZONE)
    assert [e.track_id for e in longest] == [first.track_id]
    assert _events(vtest_steps, {"loitering": {"min_dwell_s": 10}}, LOITER, GRASS) == []  # nobody on the lawn


def test_running_fires_with_a_low_speed_threshold_and_not_with_a_high_one(vtest_steps: list[_Step]) -> None:
    brisk = _events(vtest_steps, {"running": {"min_speed": 0.8}}, RUN, None)
    assert brisk and {e.label for e in brisk} == {"running"}
    assert _events(vtest_steps, {"running": {"min_speed": 1.5}}, RUN, None) == []  # the default: nobody runs


def test_running_fires_on_the_clip_played_four_times_faster(vtest_steps: list[_Step]) -> None:
    """The same frames with timestamps divided by 4: the walkers now move at 1.6-5 body heights/s."""
    fast = _events(vtest_steps, {}, RUN, None, speed_up=4.0)
    assert len({e.track_id for e in fast}) >= 3
