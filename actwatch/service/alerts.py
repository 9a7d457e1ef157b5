"""Alert rules: turn per-window class probabilities into :class:`~actwatch.service.events.Event`s.

A class alerts for one track when, among that track's last ``m`` classified windows, at least ``n`` had
the class's probability at or above ``threshold`` (N-of-M agreement), the newest window is one of them,
the track is at least ``min_track_age_s`` old, the bottom-centre of its box is inside the camera's zone
(when the camera has one) and the camera × track × class is not cooling down from a previous alert.
Classes without an enabled rule never alert.

Windows that cannot alert (too young, outside the zone, cooling down) still count towards the N-of-M
history: agreement is about what the model saw, the gates are about whether to tell anyone.

Example:
    >>> import numpy as np
    >>> from actwatch.tracker.window import TrackWindow
    >>> engine = AlertEngine([AlertRule("fighting", threshold=0.5, n=2, m=3, min_track_age_s=0)],
    ...                      classes=["walking", "fighting"])
    >>> w = lambda t: TrackWindow("cam1", 1, np.zeros((2, 4), np.float32), np.zeros(2), (0, 0, 10, 20),
    ...                           0.0, t, 0)
    >>> engine.update(w(1.0), np.array([0.1, 0.9]))
    []
    >>> [(e.label, e.start_time, e.frame_time) for e in engine.update(w(2.0), np.array([0.2, 0.8]))]
    [('fighting', 1.0, 2.0)]
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from actwatch.config import AlertRuleConfig
from actwatch.errors import ConfigError
from actwatch.service.events import Event

Polygon = Sequence[tuple[float, float]]


class AlertSubject(Protocol):
    """What a rule gates on: one track at one time (a model's :class:`~actwatch.tracker.window.TrackWindow`,
    or a behaviour signal's :class:`~actwatch.signals.behaviour.TrackSignals`)."""

    @property
    def camera_id(self) -> str: ...
    @property
    def track_id(self) -> int: ...
    @property
    def box(self) -> tuple[float, float, float, float]: ...
    @property
    def first_seen(self) -> float: ...
    @property
    def frame_time(self) -> float: ...


@dataclass(frozen=True, slots=True)
class AlertRule:
    """When ``label`` alerts; see the module docstring. Build from config with :meth:`from_config`.

    Example:
        >>> AlertRule("fall", threshold=0.7, n=2, m=4).cooldown_s
        30.0
    """

    label: str
    threshold: float = 0.5
    n: int = 3
    m: int = 5
    cooldown_s: float = 30.0
    min_track_age_s: float = 1.0
    enabled: bool = True

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"rule '{self.label}': threshold must be in (0, 1], got {self.threshold}")
        if not 1 <= self.n <= self.m:
            raise ValueError(f"rule '{self.label}': need 1 <= n <= m, got n={self.n}, m={self.m}")
        if self.cooldown_s < 0 or self.min_track_age_s < 0:
            raise ValueError(f"rule '{self.label}': cooldown_s and min_track_age_s must be >= 0")

    @classmethod
    def from_config(cls, cfg: AlertRuleConfig) -> AlertRule:
        return cls(**cfg.model_dump())


def point_in_polygon(x: float, y: float, polygon: Polygon) -> bool:
    """Whether ``(x, y)`` is inside ``polygon`` (even-odd rule; points on an edge count as inside).

    Example:
        >>> square = [(0, 0), (10, 0), (10, 10), (0, 10)]
        >>> point_in_polygon(5, 5, square), point_in_polygon(5, 10, square), point_in_polygon(11, 5, square)
        (True, True, False)
    """
    inside = False
    n = len(polygon)
    for i in range(n):
        x1, y1 = polygon[i]
        x2, y2 = polygon[(i + 1) % n]
        # On the edge: collinear and within the segment's bounding box.
        cross = (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1)
        if abs(cross) < 1e-9 and min(x1, x2) <= x <= max(x1, x2) and min(y1, y2) <= y <= max(y1, y2):
            return True
        if (y1 > y) != (y2 > y):
            x_cross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
            if x < x_cross:
                inside = not inside
    return inside


@dataclass(slots=True)
class _ClassHistory:
    """The last ``m`` windows of one track for one class: (agreeing, frame_time, score)."""

    windows: collections.deque[tuple[bool, float, float]]
    last_alert: float | None = None


@dataclass(slots=True)
class _TrackState:
    classes: dict[int, _ClassHistory] = field(default_factory=dict)
    last_update: float = 0.0


class AlertEngine:
    """Applies :class:`AlertRule`s to the windows of every track of every camera.

    ``rules`` may be :class:`AlertRule` or :class:`~actwatch.config.AlertRuleConfig`; a rule for a label
    that is not in ``classes`` is a :class:`~actwatch.errors.ConfigError`. ``zones`` maps camera ids to
    polygons in pixels. State is kept per track and dropped when the pipeline reports the track's end
    (:meth:`end_tracks`, :meth:`drop_camera`: the :class:`~actwatch.tracker.track_end.TrackEndListener`
    protocol); as a memory bound it is also dropped when a track has not been updated for
    ``stale_after_s`` seconds of ``clock``, and beyond ``max_tracks`` tracks (least recently updated
    first), so it cannot grow without bound.

    Thread-safe: the pipeline thread calls :meth:`update`; the API may change zones at the same time.

    Example:
        >>> engine = AlertEngine([], classes=["walking"], zones={"cam1": [(0, 0), (10, 0), (0, 10)]})
        >>> engine.set_zone("cam2", None); engine.active_tracks
        0
    """

    def __init__(
        self,
        rules: Iterable[AlertRule | AlertRuleConfig],
        classes: Sequence[str],
        zones: Mapping[str, Polygon | None] | None = None,
        clock: Callable[[], float] = time.time,
        *,
        stale_after_s: float = 300.0,
        max_tracks: int = 4096,
    ) -> None:
        self._classes = list(classes)
        index = {label: i for i, label in enumerate(self._classes)}
        self._rules: dict[int, AlertRule] = {}
        for i, raw in enumerate(rules):
            rule = AlertRule.from_config(raw) if isinstance(raw, AlertRuleConfig) else raw
            if rule.label not in index:
                raise ConfigError(
                    f"alerts.rules.{i}.label: unknown label '{rule.label}'; the model's classes are "
                    f"{', '.join(self._classes)}"
                )
            if rule.enabled:
                self._rules[index[rule.label]] = rule
        self._zones: dict[str, list[tuple[float, float]]] = {}
        for camera_id, polygon in (zones or {}).items():
            self.set_zone(camera_id, polygon)
        self._clock = clock
        # A track's cooldown lives in its state: never evict it while a cooldown may still be running.
        self._stale_after_s = max([stale_after_s, *(r.cooldown_s for r in self._rules.values())])
        self._max_tracks = max_tracks
        self._tracks: collections.OrderedDict[tuple[str, int], _TrackState] = collections.OrderedDict()
        self._lock = threading.Lock()

    @property
    def classes(self) -> list[str]:
        return list(self._classes)

    @property
    def rules(self) -> list[AlertRule]:
        """The enabled rules."""
        return list(self._rules.values())

    @property
    def active_tracks(self) -> int:
        """Tracks with alert state held."""
        with self._lock:
            return len(self._tracks)

    def set_zone(self, camera_id: str, polygon: Polygon | None) -> None:
        """Give ``camera_id`` a zone (pixels), or remove its zone with ``None``."""
        if polygon is None:
            self._zones.pop(camera_id, None)
            return
        points = [(float(x), float(y)) for x, y in polygon]
        if len(points) < 3:
            raise ValueError(f"zone of camera '{camera_id}' needs at least 3 points")
        self._zones[camera_id] = points

    def zone(self, camera_id: str) -> list[tuple[float, float]] | None:
        return self._zones.get(camera_id)

    def end_tracks(self, camera_id: str, track_ids: Sequence[int]) -> None:
        """Drop the state of ended tracks."""
        with self._lock:
            for track_id in track_ids:
                self._tracks.pop((camera_id, int(track_id)), None)

    def drop_camera(self, camera_id: str) -> None:
        """Drop every track of a removed camera. Not its zone: that is the camera's configuration, set
        (or cleared) each time the camera is added, and a removal reaches this phase after the frames
        before it, by when the camera may be running again with its zone (disabled, then enabled)."""
        with self._lock:
            for key in [k for k in self._tracks if k[0] == camera_id]:
                del self._tracks[key]

    def update(self, window: AlertSubject, probs: np.ndarray) -> list[Event]:
        """Record ``probs`` (one probability per class) for ``window``'s track; the alerts it triggers."""
        scores = np.asarray(probs, dtype=np.float64).reshape(-1)
        if scores.shape[0] != len(self._classes):
            raise ValueError(f"expected {len(self._classes)} probabilities, got {scores.shape[0]}")
        if not self._rules:
            return []
        key = (window.camera_id, window.track_id)
        now = self._clock()
        with self._lock:
            self._evict(now)
            state = self._tracks.get(key)
            if state is None:
                state = self._tracks[key] = _TrackState()
            self._tracks.move_to_end(key)
            state.last_update = now
            while len(self._tracks) > self._max_tracks:
                self._tracks.popitem(last=False)
            return self._apply(window, scores, state)

    def _apply(self, window: AlertSubject, scores: np.ndarray, state: _TrackState) -> list[Event]:
        age_s = window.frame_time - window.first_seen
        zone = self._zones.get(window.camera_id)
        x1, _, x2, y2 = window.box
        in_zone = zone is None or point_in_polygon((x1 + x2) / 2.0, y2, zone)
        events: list[Event] = []
        for class_index, rule in self._rules.items():
            score = float(scores[class_index])
            history = state.classes.get(class_index)
            if history is None:
                history = state.classes[class_index] = _ClassHistory(collections.deque(maxlen=rule.m))
            agreeing = score >= rule.threshold
            history.windows.append((agreeing, window.frame_time, score))
            if not agreeing or age_s < rule.min_track_age_s or not in_zone:
                continue
            agreed = [(t, s) for ok, t, s in history.windows if ok]
            if len(agreed) < rule.n:
                continue
            if history.last_alert is not None and window.frame_time - history.last_alert < rule.cooldown_s:
                continue
            history.last_alert = window.frame_time
            events.append(
                Event(
                    camera_id=window.camera_id,
                    track_id=window.track_id,
                    label=rule.label,
                    # The agreeing windows' mean: one lucky window does not set the reported confidence.
                    score=float(np.mean([s for _, s in agreed])),
                    start_time=agreed[0][0],
                    frame_time=window.frame_time,
                    bbox=(
                        float(window.box[0]),
                        float(window.box[1]),
                        float(window.box[2]),
                        float(window.box[3]),
                    ),
                )
            )
        return events

    def _evict(self, now: float) -> None:
        # Least recently updated first, so the scan stops at the first fresh track.
        while self._tracks:
            key, state = next(iter(self._tracks.items()))
            if now - state.last_update <= self._stale_after_s:
                break
            del self._tracks[key]
