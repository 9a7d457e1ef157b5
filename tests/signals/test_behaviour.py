"""BehaviourSignals and SignalStage on boxes whose motion is known: each score means what it says, state
ends with the track, and the rules (threshold, N-of-M, cooldown, minimum age, zone) apply to signals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from actwatch.capture.frame import Frame
from actwatch.config import AlertRuleConfig, AppConfig
from actwatch.errors import ConfigError
from actwatch.signals.behaviour import BehaviourSignals
from actwatch.signals.settings import SignalsSettings
from actwatch.signals.stage import SignalStage, split_rules
from actwatch.tracker.detections import Detections


def _boxes(*rows: tuple[int, float, float, float, float, int]) -> Detections:
    """Rows of (track id, x1, y1, x2, y2, class id)."""
    data = np.array([r[1:5] for r in rows], np.float32).reshape(-1, 4)
    return Detections(
        data,
        np.full(len(rows), 0.9, np.float32),
        np.array([r[5] for r in rows], np.int64),
        np.array([r[0] for r in rows], np.int64),
    )


def _frame(t: float) -> Frame:
    return Frame("cam1", int(t * 10), t, 1000.0 + t, np.zeros((480, 640, 3), np.uint8))


def test_running_is_speed_in_body_heights_per_second() -> None:
    signals = BehaviourSignals(SignalsSettings.model_validate({"running": {"min_speed": 2.0}}), ())
    speeds, running = [], []
    for i in range(21):  # 10 fps, 2 s; track 1 moves 15 px a frame (1.5 bh/s), track 2 40 px (4 bh/s)
        t = i / 10
        out = signals.update(
            "cam1", _boxes((1, 15 * i, 0, 15 * i + 40, 100, 0), (2, 40 * i, 200, 40 * i + 40, 300, 0)), t, t
        )
        speeds.append([s.speed for s in out])
        running.append([s.running for s in out])
    assert all(math.isnan(v) for v in speeds[0])  # one box: no speed yet
    assert speeds[-1] == pytest.approx([1.5, 4.0])
    assert running[-1] == [0.0, 1.0]


def test_speed_uses_stream_time_not_steps() -> None:
    """The same motion processed at 2 fps or at 10 fps is the same speed."""
    for fps in (2, 10):
        signals = BehaviourSignals(SignalsSettings(), ())
        for i in range(3 * fps + 1):
            t = i / fps
            [s] = signals.update("cam1", _boxes((1, 100 * t, 0, 100 * t + 40, 50, 0)), t, t)
        assert s.speed == pytest.approx(2.0)


def test_loitering_counts_dwell_inside_the_zone_and_restarts_when_the_track_leaves() -> None:
    signals = BehaviourSignals(SignalsSettings.model_validate({"loitering": {"min_dwell_s": 3}}), ())
    signals.set_zone("cam1", [(0, 0), (200, 0), (200, 200), (0, 200)])
    inside, outside = (1, 50, 50, 90, 150, 0), (1, 300, 50, 340, 150, 0)
    path = [inside] * 21 + [outside] * 5 + [inside] * 20  # 2 s in, 0.5 s out, 2 s in
    out = [signals.update("cam1", _boxes(row), i / 10, i / 10)[0] for i, row in enumerate(path)]
    assert out[20].dwell_s == pytest.approx(2.0) and out[20].loitering == 0.0
    assert out[23].dwell_s == 0.0  # left: the count starts again
    assert out[-1].dwell_s == pytest.approx(1.9) and out[-1].loitering == 0.0
    signals.set_zone("cam1", None)  # no zone: the whole frame
    elsewhere = (2, *outside[1:])
    later = [signals.update("cam1", _boxes(elsewhere), 5 + i / 10, 5 + i / 10)[-1] for i in range(31)]
    assert later[-1].dwell_s == pytest.approx(3.0) and later[-1].loitering == 1.0


def test_fallen_is_the_share_of_fallen_detections_over_recent_samples() -> None:
    signals = BehaviourSignals(SignalsSettings.model_validate({"fallen": {"samples": 4}}), fallen_class_ids=(1,))
    classes = [0, 1, 1, 0, 1, 1, 1]
    shares = [signals.update("cam1", _boxes((5, 0, 0, 80, 30, c)), i, i)[0].fallen for i, c in enumerate(classes)]
    assert shares == [0.0, 0.5, 2 / 3, 0.5, 0.75, 0.75, 0.75]


def test_state_ends_with_the_track_and_the_camera() -> None:
    signals = BehaviourSignals(SignalsSettings(), ())
    signals.update("cam1", _boxes((1, 0, 0, 10, 20, 0), (2, 0, 0, 10, 20, 0)), 0.0, 0.0)
    signals.update("cam2", _boxes((1, 0, 0, 10, 20, 0)), 0.0, 0.0)
    assert signals.active_tracks == 3
    signals.end_tracks("cam1", [1])
    assert signals.active_tracks == 2
    [again] = signals.update("cam1", _boxes((1, 0, 0, 10, 20, 0)), 9.0, 9.0)
    assert again.first_seen == 9.0  # a new track, not the old one's state
    signals.drop_camera("cam1")
    assert signals.active_tracks == 1
    # Untracked rows (track id -1) are not persons the signals follow.
    assert signals.update("cam3", _boxes((-1, 0, 0, 10, 20, 0)), 0.0, 0.0) == []


def test_signal_rules_gate_like_model_rules() -> None:
    rules = [
        AlertRuleConfig(label="running", threshold=1.0, n=3, m=4, cooldown_s=5, min_track_age_s=1.0),
        AlertRuleConfig(label="loitering", threshold=1.0, n=1, m=1, cooldown_s=100, min_track_age_s=0),
    ]
    settings = SignalsSettings.model_validate({"loitering": {"min_dwell_s": 1.5}})
    stage = SignalStage(settings, (), rules)
    stage.set_zone("cam1", [(0, 0), (640, 0), (640, 240), (0, 240)])  # top half
    events = []
    for i in range(41):  # 4 s at 10 fps; track 1 runs (4 bh/s) along the top, track 2 stands in the bottom half
        t = i / 10
        tracked = _boxes((1, 40 * i, 100, 40 * i + 40, 200, 0), (2, 300, 300, 340, 400, 0))
        events += [
            (round(e.frame_time - 1000.0, 1), e.track_id, e.label) for e in stage.update("cam1", tracked, _frame(t))
        ]
    # running: from 1 s of age on, 3 agreeing steps of the last 4, then quiet for 5 s of cooldown;
    # loitering: track 1 in the zone for 1.5 s (track 2 is outside the zone, never).
    assert events == [(1.0, 1, "running"), (1.5, 1, "loitering")]
    stage.end_tracks("cam1", [1])
    assert stage.signals.active_tracks == 1 and stage.alerts.active_tracks == 1


def test_rules_are_split_by_label_and_a_clash_is_a_config_error() -> None:
    config = AppConfig.model_validate(
        {"alerts": {"rules": [{"label": "fighting"}, {"label": "fallen"}, {"label": "dwell"}]}}
    )
    labels = SignalsSettings().labels()
    model, signal = split_rules(config.alerts.rules, ["walking", "fighting"], labels)
    assert [r.label for r in model] == ["fighting", "dwell"] and [r.label for r in signal] == ["fallen"]
    with pytest.raises(ConfigError, match=r"'fallen' names both .* signals\.<name>\.label"):
        split_rules(config.alerts.rules, ["fallen", "fighting"], labels)
    renamed = AppConfig.model_validate({"signals": {"fallen": {"label": "lying"}}}).signals
    assert renamed.labels() == ("lying", "loitering", "running")
    with pytest.raises(ValueError, match="signal labels must differ"):
        SignalsSettings.model_validate({"running": {"label": "fallen"}})
