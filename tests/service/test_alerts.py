"""Alert rules: threshold, N-of-M, cooldown, minimum track age, zones, forgetting tracks."""

from __future__ import annotations

import numpy as np
import pytest

from actwatch.config import AlertRuleConfig
from actwatch.errors import ConfigError
from actwatch.service.alerts import AlertEngine, AlertRule, point_in_polygon
from actwatch.tracker.window import TrackWindow

CLASSES = ["walking", "standing", "fighting"]
FIGHT = 2


def window(
    t: float,
    *,
    camera: str = "cam1",
    track: int = 1,
    first_seen: float = -100.0,
    box: tuple[float, float, float, float] = (100.0, 100.0, 140.0, 200.0),
) -> TrackWindow:
    return TrackWindow(camera, track, np.zeros((4, 8), np.float32), np.arange(4) / 10.0, box, first_seen, t, int(t))


def probs(fight: float) -> np.ndarray:
    rest = (1.0 - fight) / 2
    return np.array([rest, rest, fight], np.float32)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def engine(rule: AlertRule, **kwargs: object) -> AlertEngine:
    return AlertEngine([rule], CLASSES, **kwargs)  # type: ignore[arg-type]


def run(eng: AlertEngine, scores: list[float], **kwargs: object) -> list[tuple[int, float, float]]:
    """Feed one window per second; (index, start_time, frame_time) of each event."""
    out = []
    for i, s in enumerate(scores):
        for e in eng.update(window(float(i), **kwargs), probs(s)):  # type: ignore[arg-type]
            out.append((i, e.start_time, e.frame_time))
    return out


def test_threshold_single_window() -> None:
    eng = engine(AlertRule("fighting", threshold=0.8, n=1, m=1, cooldown_s=0, min_track_age_s=0))
    assert run(eng, [0.79, 0.5, 0.8]) == [(2, 2.0, 2.0)]


def test_n_of_m_needs_agreement_and_reports_start_time() -> None:
    eng = engine(AlertRule("fighting", threshold=0.6, n=3, m=5, cooldown_s=100, min_track_age_s=0))
    # agreeing at 0, 2, 4: the third agreeing window within 5 confirms; start = the first agreeing one
    assert run(eng, [0.9, 0.1, 0.9, 0.1, 0.9]) == [(4, 0.0, 4.0)]
    eng = engine(AlertRule("fighting", threshold=0.6, n=3, m=5, cooldown_s=100, min_track_age_s=0))
    # 0 and 4 agree, then 6: window 0 has left the last 5 -> only 2 agree, no alert
    assert run(eng, [0.9, 0.1, 0.1, 0.1, 0.9, 0.1, 0.9]) == []


def test_newest_window_must_agree() -> None:
    eng = engine(AlertRule("fighting", threshold=0.6, n=2, m=3, cooldown_s=0, min_track_age_s=0))
    assert run(eng, [0.9, 0.9, 0.1]) == [(1, 0.0, 1.0)]


def test_score_is_mean_of_agreeing_windows() -> None:
    eng = engine(AlertRule("fighting", threshold=0.6, n=2, m=3, cooldown_s=0, min_track_age_s=0))
    eng.update(window(0.0), probs(0.7))
    eng.update(window(1.0), probs(0.1))
    (event,) = eng.update(window(2.0), probs(0.9))
    assert event.score == pytest.approx(0.8, abs=1e-6)
    assert event.label == "fighting" and event.camera_id == "cam1" and event.track_id == 1
    assert event.bbox == (100.0, 100.0, 140.0, 200.0)


def test_cooldown_per_camera_track_class() -> None:
    eng = engine(AlertRule("fighting", threshold=0.5, n=1, m=1, cooldown_s=3, min_track_age_s=0))
    assert [i for i, _, _ in run(eng, [0.9] * 8)] == [0, 3, 6]
    # another track (and another camera) is not held back by track 1's cooldown
    eng = engine(AlertRule("fighting", threshold=0.5, n=1, m=1, cooldown_s=3, min_track_age_s=0))
    assert len(eng.update(window(0.0, track=1), probs(0.9))) == 1
    assert len(eng.update(window(0.5, track=2), probs(0.9))) == 1
    assert len(eng.update(window(0.6, track=1, camera="cam2"), probs(0.9))) == 1
    assert eng.update(window(1.0, track=1), probs(0.9)) == []


def test_minimum_track_age() -> None:
    eng = engine(AlertRule("fighting", threshold=0.5, n=2, m=3, cooldown_s=100, min_track_age_s=2.5))
    # the track starts at t=0: windows at 0, 1, 2 agree but are too young; t=3 is old enough.
    # They still count: the event starts at the first agreeing window among the last m=3 (t=1).
    assert run(eng, [0.9, 0.9, 0.9, 0.9], first_seen=0.0) == [(3, 1.0, 3.0)]


def test_zone_uses_bottom_centre_of_the_box() -> None:
    zone = [(0.0, 150.0), (300.0, 150.0), (300.0, 300.0), (0.0, 300.0)]  # lower half of the frame
    eng = engine(AlertRule("fighting", threshold=0.5, n=1, m=1, cooldown_s=0, min_track_age_s=0), zones={"cam1": zone})
    inside = (100.0, 50.0, 140.0, 200.0)  # feet at y=200: inside although the head is outside
    outside = (100.0, 10.0, 140.0, 120.0)  # feet at y=120
    assert eng.update(window(0.0, box=outside), probs(0.9)) == []
    assert len(eng.update(window(1.0, box=inside), probs(0.9))) == 1
    # other cameras have no zone
    assert len(eng.update(window(2.0, camera="cam2", box=outside), probs(0.9))) == 1
    # zones change at run time
    eng.set_zone("cam1", None)
    assert len(eng.update(window(3.0, box=outside), probs(0.9))) == 1
    eng.set_zone("cam2", zone)
    assert eng.update(window(4.0, camera="cam2", box=outside), probs(0.9)) == []


def test_point_in_polygon_concave() -> None:
    u_shape = [(0, 0), (30, 0), (30, 30), (20, 30), (20, 10), (10, 10), (10, 30), (0, 30)]
    assert point_in_polygon(5, 20, u_shape) and point_in_polygon(25, 20, u_shape)
    assert not point_in_polygon(15, 20, u_shape)  # in the notch
    assert point_in_polygon(15, 5, u_shape)


def test_unlisted_and_disabled_classes_never_alert() -> None:
    eng = AlertEngine([AlertRule("walking", threshold=0.5, n=1, m=1, min_track_age_s=0, enabled=False)], CLASSES)
    assert eng.update(window(0.0), np.array([0.99, 0.0, 0.01])) == []
    assert eng.update(window(1.0), np.array([0.0, 0.0, 1.0])) == []
    assert eng.active_tracks == 0  # nothing to remember without rules


def test_unknown_label_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"alerts\.rules\.0\.label: unknown label 'kicking'"):
        AlertEngine([AlertRuleConfig(label="kicking")], CLASSES)


def test_rules_from_config_and_shape_check() -> None:
    eng = AlertEngine([AlertRuleConfig(label="fighting", threshold=0.5, n=1, m=1, min_track_age_s=0)], CLASSES)
    assert eng.rules[0].threshold == 0.5
    with pytest.raises(ValueError, match="expected 3 probabilities"):
        eng.update(window(0.0), np.array([0.5, 0.5]))
    with pytest.raises(ValueError, match="n <= m"):
        AlertRule("fighting", n=4, m=3)


def test_forget_track_resets_history_and_frees_state() -> None:
    eng = engine(AlertRule("fighting", threshold=0.5, n=2, m=3, cooldown_s=0, min_track_age_s=0))
    eng.update(window(0.0), probs(0.9))
    assert eng.active_tracks == 1
    eng.end_tracks("cam1", [1])
    assert eng.active_tracks == 0
    assert eng.update(window(1.0), probs(0.9)) == []  # history was cleared: only 1 agreeing window
    eng.update(window(2.0, camera="cam2"), probs(0.9))
    eng.drop_camera("cam1")
    assert eng.active_tracks == 1


def test_state_is_bounded() -> None:
    clock = Clock()
    eng = engine(
        AlertRule("fighting", threshold=0.5, n=2, m=3, cooldown_s=10, min_track_age_s=0),
        clock=clock,
        max_tracks=50,
        stale_after_s=60,
    )
    for track in range(500):  # tracks that end without end_tracks
        eng.update(window(float(track), track=track), probs(0.1))
    assert eng.active_tracks == 50
    clock.now = 1000.0  # all of them went stale
    eng.update(window(1000.0, track=9999), probs(0.1))
    assert eng.active_tracks == 1
