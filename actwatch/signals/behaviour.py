"""Per-track behaviour signals from tracked boxes alone: ``fallen``, ``loitering``, ``running``.

:class:`BehaviourSignals` is fed every tracked person of a camera at every step (whether or not its
model window is full, and whether or not the track is flagged static: a fallen person lies still too) and
returns one :class:`TrackSignals` per track: the three scores (see :mod:`actwatch.signals.settings`)
with what the alert rules need (box, first seen, frame time). Per-track state is freed when the track
phase reports the track's end (the :class:`~actwatch.tracker.track_end.TrackEndListener` protocol).

Times: dwell and speed use the stream's clock (``timestamp``), so they mean the same on every camera
whatever rate it is processed at; ``first_seen`` and ``frame_time`` are wall time, like a model window's.

Example (a person 100 px tall walking 300 px to the right in 1 s: 3 body heights per second):
    >>> import numpy as np
    >>> from actwatch.signals.settings import SignalsSettings
    >>> from actwatch.tracker.detections import Detections
    >>> signals = BehaviourSignals(SignalsSettings(), fallen_class_ids=(1,))
    >>> def person(x, cls=0):
    ...     return Detections(np.array([[x, 100, x + 40, 200]], np.float32), np.array([0.9], np.float32),
    ...                       np.array([cls]), np.array([7]))
    >>> _ = signals.update("cam1", person(0), timestamp=0.0, wall_time=100.0)
    >>> [s] = signals.update("cam1", person(300, cls=1), timestamp=1.0, wall_time=101.0)
    >>> s.track_id, s.speed, s.running, s.fallen, s.loitering
    (7, 3.0, 1.0, 0.5, 0.0)
    >>> signals.end_tracks("cam1", [7]); signals.active_tracks
    0
"""

from __future__ import annotations

import collections
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from actwatch.service.alerts import Polygon, point_in_polygon
from actwatch.signals.settings import SignalsSettings
from actwatch.tracker.detections import Detections


@dataclass(frozen=True, slots=True)
class TrackSignals:
    """One track's signal scores at one step, with what an alert rule needs to gate on.

    ``speed`` is in body heights per second (``nan`` until the track spans half the speed window);
    ``dwell_s`` the stream seconds it has been inside the zone without leaving it.

    Example:
        >>> s = TrackSignals("cam1", 3, (0.0, 0.0, 10.0, 20.0), 1.0, 2.0, fallen=0.6, loitering=0.0,
        ...                  running=1.0, speed=2.4, dwell_s=0.0)
        >>> s.scores().tolist()
        [0.6, 0.0, 1.0]
    """

    camera_id: str
    track_id: int
    box: tuple[float, float, float, float]  # x1 y1 x2 y2, frame pixels
    first_seen: float  # wall time the track was first seen
    frame_time: float  # wall time of this frame
    fallen: float
    loitering: float
    running: float
    speed: float
    dwell_s: float

    def scores(self) -> np.ndarray:
        """The scores in the order of :meth:`SignalsSettings.labels`: fallen, loitering, running."""
        return np.array([self.fallen, self.loitering, self.running], np.float64)


@dataclass(frozen=True, slots=True)
class _BoxSample:
    timestamp: float
    cx: float
    cy: float
    height: float


@dataclass(slots=True)
class _TrackState:
    first_seen: float
    fallen: collections.deque[bool]
    boxes: collections.deque[_BoxSample] = field(default_factory=collections.deque)
    in_zone_since: float | None = None


class BehaviourSignals:
    """Computes every tracked person's signal scores, step by step, for every camera.

    ``fallen_class_ids`` are the detector classes that mean a fallen person (see
    :func:`fallen_class_ids`). Zones are set per camera (:meth:`set_zone`), as for the alert rules.
    Used by the compute thread only.
    """

    def __init__(self, settings: SignalsSettings, fallen_class_ids: Iterable[int]) -> None:
        self.settings = settings
        self.fallen_class_ids = frozenset(int(c) for c in fallen_class_ids)
        self._tracks: dict[tuple[str, int], _TrackState] = {}
        self._zones: dict[str, list[tuple[float, float]]] = {}

    @property
    def active_tracks(self) -> int:
        """Tracks with signal state held."""
        return len(self._tracks)

    def set_zone(self, camera_id: str, polygon: Polygon | None) -> None:
        """The zone loitering is measured in (pixels); ``None``: the whole frame."""
        if polygon is None:
            self._zones.pop(camera_id, None)
        else:
            self._zones[camera_id] = [(float(x), float(y)) for x, y in polygon]

    def update(self, camera_id: str, tracked: Detections, timestamp: float, wall_time: float) -> list[TrackSignals]:
        """Record one frame's tracked persons of ``camera_id``; return each one's scores."""
        zone = self._zones.get(camera_id)
        out: list[TrackSignals] = []
        for box, class_id, track_id in zip(tracked.xyxy, tracked.class_id, tracked.track_id, strict=True):
            if track_id < 0:
                continue
            key = (camera_id, int(track_id))
            state = self._tracks.get(key)
            if state is None:
                state = self._tracks[key] = _TrackState(
                    wall_time, collections.deque(maxlen=self.settings.fallen.samples)
                )
            x1, y1, x2, y2 = (float(v) for v in box)
            state.fallen.append(int(class_id) in self.fallen_class_ids)
            speed = self._speed(state, _BoxSample(timestamp, (x1 + x2) / 2.0, (y1 + y2) / 2.0, y2 - y1))
            dwell = self._dwell(state, zone is None or point_in_polygon((x1 + x2) / 2.0, y2, zone), timestamp)
            out.append(
                TrackSignals(
                    camera_id=camera_id,
                    track_id=int(track_id),
                    box=(x1, y1, x2, y2),
                    first_seen=state.first_seen,
                    frame_time=wall_time,
                    fallen=sum(state.fallen) / len(state.fallen),
                    loitering=1.0 if dwell >= self.settings.loitering.min_dwell_s else 0.0,
                    running=1.0 if speed >= self.settings.running.min_speed else 0.0,
                    speed=speed,
                    dwell_s=dwell,
                )
            )
        return out

    def _speed(self, state: _TrackState, sample: _BoxSample) -> float:
        """Body heights per second from the oldest box in the window to ``sample``; nan when too short."""
        window = self.settings.running.window_s
        boxes = state.boxes
        boxes.append(sample)
        # Keep one box at or before the window's start, so the span covers the whole window.
        while len(boxes) >= 2 and boxes[1].timestamp <= sample.timestamp - window:
            boxes.popleft()
        first = boxes[0]
        span = sample.timestamp - first.timestamp
        if span < window / 2.0:
            return math.nan
        height = float(np.mean([b.height for b in boxes]))
        if height <= 0:
            return math.nan
        return math.hypot(sample.cx - first.cx, sample.cy - first.cy) / height / span

    @staticmethod
    def _dwell(state: _TrackState, inside: bool, timestamp: float) -> float:
        if not inside:
            state.in_zone_since = None
            return 0.0
        if state.in_zone_since is None:
            state.in_zone_since = timestamp
        return timestamp - state.in_zone_since

    # ---------------------------------------------------------------------------- TrackEndListener
    def end_tracks(self, camera_id: str, track_ids: Sequence[int]) -> None:
        """Free the state of ended tracks."""
        for track_id in track_ids:
            self._tracks.pop((camera_id, int(track_id)), None)

    def drop_camera(self, camera_id: str) -> None:
        """Free every track of a removed camera (not its zone: see ``AlertEngine.drop_camera``)."""
        for key in [k for k in self._tracks if k[0] == camera_id]:
            del self._tracks[key]


def fallen_class_ids(settings: SignalsSettings, class_names: dict[int, str]) -> tuple[int, ...]:
    """The detector classes that mean a fallen person: ``fallen.class_ids`` when set, else the classes
    whose names are in ``fallen.class_names`` (case-insensitive).

    Example:
        >>> settings = SignalsSettings()
        >>> fallen_class_ids(settings, {0: "Normal", 1: "Fall"}), fallen_class_ids(settings, {0: "person"})
        ((1,), ())
    """
    if settings.fallen.class_ids is not None:
        return tuple(settings.fallen.class_ids)
    wanted = {name.casefold() for name in settings.fallen.class_names}
    return tuple(sorted(i for i, name in class_names.items() if name.casefold() in wanted))
