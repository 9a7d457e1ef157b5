"""The signals phase of the pipeline: behaviour signals of every tracked person -> alert rules -> events.

:class:`SignalStage` is the one object the pipeline calls (:meth:`SignalStage.update` with a camera's
tracked persons and its frame) and tells about zones and ended tracks. It owns a
:class:`~actwatch.signals.behaviour.BehaviourSignals` and an
:class:`~actwatch.service.alerts.AlertEngine` over the signal labels, so a signal alerts under the same
rules as a model class: threshold, N-of-M (over steps), cooldown, minimum track age, the camera's zone.

:func:`split_rules` sorts ``alerts.rules`` into model rules and signal rules by label; a label that
names both a model class and a signal is a :class:`~actwatch.errors.ConfigError` (rename the signal).

Example:
    >>> import numpy as np
    >>> from actwatch.capture.frame import Frame
    >>> from actwatch.config import AlertRuleConfig
    >>> from actwatch.tracker.detections import Detections
    >>> rule = AlertRuleConfig(label="fallen", threshold=0.5, n=1, m=1, min_track_age_s=0)
    >>> stage = SignalStage(SignalsSettings(), fallen_class_ids=(1,), rules=[rule])
    >>> lying = Detections(np.array([[10, 50, 90, 80]], np.float32), np.array([0.8], np.float32),
    ...                    np.array([1]), np.array([4]))
    >>> frame = Frame("cam1", 0, 0.0, 1000.0, np.zeros((120, 160, 3), np.uint8))
    >>> [(e.label, e.track_id, e.score) for e in stage.update("cam1", lying, frame)]
    [('fallen', 4, 1.0)]
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

from actwatch.capture.frame import Frame
from actwatch.config import AlertRuleConfig
from actwatch.errors import ConfigError
from actwatch.service.alerts import AlertEngine, AlertRule, Polygon
from actwatch.service.events import Event
from actwatch.signals.behaviour import BehaviourSignals
from actwatch.signals.settings import SignalsSettings
from actwatch.tracker.detections import Detections

Rule = AlertRule | AlertRuleConfig


def split_rules(
    rules: Iterable[Rule], model_classes: Sequence[str], signal_labels: Sequence[str]
) -> tuple[list[Rule], list[Rule]]:
    """``rules`` as (model rules, signal rules), by label.

    Example:
        >>> rules = [AlertRule("fighting"), AlertRule("running")]
        >>> [[r.label for r in part] for part in split_rules(rules, ["fighting"], ["fallen", "running"])]
        [['fighting'], ['running']]
    """
    model_rules: list[Rule] = []
    signal_rules: list[Rule] = []
    for rule in rules:
        if rule.label in signal_labels:
            if rule.label in model_classes:
                raise ConfigError(
                    f"alert rule label '{rule.label}' names both a class of the action model and a behaviour "
                    f"signal; give the signal another label (e.g. signals.<name>.label: signal_{rule.label})"
                )
            signal_rules.append(rule)
        else:
            model_rules.append(rule)
    return model_rules, signal_rules


class SignalStage:
    """Behaviour signals + their alert rules, per camera and track. Used by the compute thread; zones may be
    set from the API thread (the alert engine locks; a zone swap is one dict assignment)."""

    def __init__(
        self,
        settings: SignalsSettings,
        fallen_class_ids: Iterable[int],
        rules: Iterable[Rule],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.signals = BehaviourSignals(settings, fallen_class_ids)
        self.alerts = AlertEngine(rules, classes=settings.labels(), clock=clock)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.alerts.classes)

    def set_zone(self, camera_id: str, polygon: Polygon | None) -> None:
        """The camera's zone, for loitering and for the rules' zone gate."""
        self.signals.set_zone(camera_id, polygon)
        self.alerts.set_zone(camera_id, polygon)

    def update(self, camera_id: str, tracked: Detections, frame: Frame) -> list[Event]:
        """Score every tracked person of ``camera_id`` in ``frame``; return the alerts that fire."""
        events: list[Event] = []
        for track in self.signals.update(camera_id, tracked, frame.timestamp, frame.wall_time):
            events += self.alerts.update(track, track.scores())
        return events

    def end_tracks(self, camera_id: str, track_ids: Sequence[int]) -> None:
        self.signals.end_tracks(camera_id, track_ids)
        self.alerts.end_tracks(camera_id, track_ids)

    def drop_camera(self, camera_id: str) -> None:
        self.signals.drop_camera(camera_id)
        self.alerts.drop_camera(camera_id)
