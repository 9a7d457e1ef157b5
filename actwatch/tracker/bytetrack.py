"""ByteTrack for one camera, with track ids that belong to that camera alone, timed in stream seconds.

The association is ByteTrack's (Zhang et al., "ByteTrack: Multi-Object Tracking by Associating Every
Detection Box", ECCV 2022; the authors' reference code is MIT): confident detections are matched to the
predicted boxes of tracked and lost tracks first; the low-confidence ones then rescue tracks that would
otherwise be lost (a partly occluded person); remaining confident ones confirm tentative tracks or start
new ones. Written here on numpy, :mod:`actwatch.tracker.kalman` and ``lap`` (the assignment solver),
so serving needs neither torch nor Ultralytics.

What the service needs beyond the paper:

* **Ids per camera.** Each :class:`CameraTracker` numbers its confirmed tracks 1, 2, 3, … and never
  reuses a number, not even after :meth:`CameraTracker.reset`. No state is shared between instances.
* **Stream time.** :meth:`CameraTracker.update` takes the frame's stream timestamp. A lost track is kept
  for :attr:`TrackerSettings.lost_track_s` seconds of that clock, whatever the camera's frame rate, and
  the motion model advances by the time that really passed (a dropped frame is a longer step).
* **Ended tracks.** :attr:`CameraTracker.removed_track_ids` lists the ids whose tracks ended in the last
  update, each once, so per-track buffers can be freed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import lap
import numpy as np
from pydantic import ConfigDict, Field, model_validator

from actwatch.settings import StrictModel
from actwatch.tracker.detections import Detections, box_iou
from actwatch.tracker.kalman import BoxKalman, xyah_to_xyxy, xyxy_to_xyah
from actwatch.tracker.scene_cut import SceneCutSettings
from actwatch.tracker.static import StaticSettings

# Fixed association gates of ByteTrack (maximum 1 - IoU): the second, low-confidence stage and the
# confirmation of tentative tracks. The first stage's gate is the `match_thresh` setting.
_LOW_SCORE_MATCH_THRESH = 0.5
_TENTATIVE_MATCH_THRESH = 0.7
# A tracked and a lost track overlapping this much (1 - IoU below it) are the same person: keep the older.
_DUPLICATE_THRESH = 0.15
# Buffered IoU never grows a box by more than half its size on each side (twice as wide and high): more
# let a lost track take over someone else nearby (measured on vtest.avi: benchmarks/fragmentation.py).
_MAX_BUFFER = 0.5
# A match may be this many box heights off the predicted centre, plus max_speed x the time since last seen
# (detector jitter and the Kalman filter's lag after a turn).
_REACH_BASE = 0.3


class TrackerSettings(StrictModel):
    """ByteTrack parameters, tuned on vtest.avi (``benchmarks/fragmentation.py``; README, "Benchmarks").

    Ultralytics' ``bytetrack.yaml`` values are for 30 fps footage and detectors that are confident about
    persons (0.8-0.9). On a CCTV camera processed at a few frames per second, with the default detector's
    confidences of 0.3-0.6, they broke tracks: the score-fused cost (``1 - IoU x confidence``) could not
    reach ``match_thresh`` for a 0.4 detection unless IoU >= 0.5, walkers moved further than their own
    width between two processed frames (IoU 0), and flickering 0.25-0.4 detections started new tracks.
    So here: no score fusion, buffered IoU (``match_buffer_per_s``) bounded by a plausible speed
    (``max_speed``), new tracks from 0.4, and lost tracks kept 2 s. The detection thresholds
    (``track_high_thresh``, ``track_low_thresh``) stay ByteTrack's, and the detector hands over boxes down
    to ``DetectorSettings.conf`` = 0.1 for the second association.

    Example (a configuration written for the former frame-counted setting says how to migrate):
        >>> TrackerSettings(lost_track_s=2.0).match_thresh
        0.8
        >>> from actwatch.settings import ConfigError, validate_settings
        >>> try:
        ...     validate_settings(TrackerSettings, {"track_buffer": 60}, "actwatch.yaml")
        ... except ConfigError as exc:
        ...     print(exc)
        invalid configuration (actwatch.yaml):
          track_buffer: replaced by lost_track_s (seconds of stream time, not frames at 30 fps); use lost_track_s: 2
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    track_high_thresh: float = Field(
        0.25, ge=0.0, le=1.0, description="First-stage association: detections at least this confident."
    )
    track_low_thresh: float = Field(
        0.1, ge=0.0, le=1.0, description="Second-stage association: low-confidence detections above this."
    )
    new_track_thresh: float = Field(
        0.4, ge=0.0, le=1.0, description="An unmatched detection starts a new track only if this confident."
    )
    lost_track_s: float = Field(
        2.0,
        gt=0.0,
        description="Seconds of stream time a lost track is kept for re-identification before it ends, "
        "whatever the camera's frame rate (ByteTrack's 30 frames at 30 fps are 1 s).",
    )
    match_thresh: float = Field(
        0.8, ge=0.0, le=1.0, description="Maximum association cost (1 - IoU, optionally score-fused)."
    )
    fuse_score: bool = Field(
        False,
        description="Fuse detection confidence into the IoU cost when matching (ByteTrack's default; it breaks "
        "tracks when the detector's person confidences are well below 1).",
    )
    match_buffer_per_s: float = Field(
        1.0,
        ge=0.0,
        description="Buffered IoU: before matching, a track's box and the detections are grown on every side by "
        "this fraction of their size per second since the track was last seen (at most 1), so a person who "
        "moved more than their width between two processed frames is still matched (at most 0.5). 0: plain IoU.",
    )
    max_speed: float | None = Field(
        2.0,
        gt=0.0,
        description="Box heights per second a person may move between two sightings of their track; a "
        "detection further from the predicted centre (plus 0.3 heights) is someone else. Null: no limit "
        "(plain ByteTrack).",
    )
    scene_cut: SceneCutSettings = Field(
        default_factory=SceneCutSettings,
        description="Scene cuts (the picture changed completely) end every track of the camera.",
    )
    static: StaticSettings = Field(
        default_factory=StaticSettings,
        description="Static tracks (a box and crop that do not change): not classified, not extracted.",
    )

    @model_validator(mode="before")
    @classmethod
    def _track_buffer_was_replaced(cls, data: Any) -> Any:
        # A config written for the Ultralytics tracker says how to migrate instead of "extra inputs".
        if isinstance(data, dict) and "track_buffer" in data:
            value = data["track_buffer"]
            hint = f"; use lost_track_s: {value / 30:g}" if isinstance(value, int | float) else ""
            raise ValueError(
                f"track_buffer: replaced by lost_track_s (seconds of stream time, not frames at 30 fps){hint}"
            )
        return data


@dataclass(slots=True, eq=False)
class _Track:
    """One track's mutable state inside a :class:`CameraTracker` (never leaves it)."""

    mean: np.ndarray  # (8,) Kalman state
    cov: np.ndarray  # (8, 8)
    box: np.ndarray  # (4,) x1 y1 x2 y2 of ``mean``, kept with it: every association stage reads it
    first_seen: float  # stream seconds
    last_seen: float
    confirmed: bool = False
    lost: bool = False
    public_id: int | None = None  # given when first published
    row: int = -1  # the detection row matched in the current update, -1 if none


def _boxes(tracks: list[_Track]) -> np.ndarray:
    """``(len(tracks), 4)`` predicted corner boxes (each track keeps its own, converted once per state)."""
    return np.array([t.box for t in tracks], np.float64).reshape(-1, 4)


def _set_states(tracks: list[_Track], mean: np.ndarray, cov: np.ndarray) -> None:
    """Give each track its row of ``mean`` and ``cov``, and its box, all tracks' boxes in one conversion."""
    boxes = xyah_to_xyxy(mean[:, :4])
    for track, m, c, box in zip(tracks, mean, cov, boxes, strict=True):
        track.mean, track.cov, track.box = m, c, box


def _grow(xyxy: np.ndarray, by: np.ndarray) -> np.ndarray:
    """Boxes ``(..., 4)`` grown on every side by ``by`` (broadcast) times their width and height."""
    w = (xyxy[..., 2] - xyxy[..., 0]) * by
    h = (xyxy[..., 3] - xyxy[..., 1]) * by
    out = np.empty(np.broadcast_shapes(xyxy.shape, (*w.shape, 4)), np.float64)  # filled in place: no stack
    out[..., 0], out[..., 1], out[..., 2], out[..., 3] = (
        xyxy[..., 0] - w,
        xyxy[..., 1] - h,
        xyxy[..., 2] + w,
        xyxy[..., 3] + h,
    )
    return out


def _too_far(track_boxes: np.ndarray, boxes: np.ndarray, reach: np.ndarray) -> np.ndarray:
    """``(len(track_boxes), len(boxes))``: whether each detection's centre is further from the track's
    predicted centre than that track's ``reach``, in the pair's mean box height."""
    a = track_boxes[:, None, :]
    b = np.asarray(boxes, np.float64)[None, :, :]
    centre_a = (a[..., :2] + a[..., 2:]) / 2
    centre_b = (b[..., :2] + b[..., 2:]) / 2
    height = np.maximum(((a[..., 3] - a[..., 1]) + (b[..., 3] - b[..., 1])) / 2, 1e-6)
    return np.linalg.norm(centre_a - centre_b, axis=-1) / height > np.asarray(reach)[:, None]


def _iou_cost(track_boxes: np.ndarray, boxes: np.ndarray, buffers: np.ndarray | None = None) -> np.ndarray:
    """``1 - IoU`` of every track's predicted box with every detection box, ``(len(track_boxes), len(boxes))``.

    ``buffers`` (one per track): both boxes of a pair are grown by that fraction of their size first
    (buffered IoU, Yang et al., WACV 2023), so a person who moved further than their own width since the
    track was last seen still overlaps it.
    """
    if not len(track_boxes) or not len(boxes):
        return np.ones((len(track_boxes), len(boxes)))
    a = track_boxes[:, None, :]
    b = np.asarray(boxes, np.float64)[None, :, :]
    if buffers is not None:
        grow = np.asarray(buffers, np.float64)[:, None]
        a, b = _grow(a, grow), _grow(np.broadcast_to(b, (len(track_boxes), *b.shape[1:])), grow)
    return 1.0 - box_iou(a, b)


def _assign(cost: np.ndarray, limit: float) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Minimum-cost matching with every pair costing at most ``limit``: matches, unmatched rows, columns."""
    rows, cols = cost.shape
    if rows == 0 or cols == 0:
        return [], list(range(rows)), list(range(cols))
    _, row_to_col, col_to_row = lap.lapjv(cost, extend_cost=True, cost_limit=limit)
    matches = [(r, int(c)) for r, c in enumerate(row_to_col) if c >= 0]
    return matches, [r for r in range(rows) if row_to_col[r] < 0], [c for c in range(cols) if col_to_row[c] < 0]


class CameraTracker:
    """ByteTrack for one camera; published track ids start at 1 and are never reused.

    ``update`` returns the detections that belong to a confirmed track, with ``track_id`` set. Boxes are
    the detector's measured boxes (not the Kalman estimate), so crops follow what was actually seen. A
    track is confirmed by its second detection (on a tracker's very first frame, by its first: ByteTrack's
    rule, so a scene already full of people is tracked at once).

    Example (two persons seen at 10 fps, then nobody for longer than ``lost_track_s``, 2 s by default):
        >>> two = Detections(np.array([[10, 10, 40, 80], [100, 20, 130, 90]], np.float32),
        ...                  np.array([0.9, 0.8], np.float32), np.zeros(2, np.int64), np.full(2, -1))
        >>> tracker = CameraTracker("cam1", frame_rate=10)
        >>> tracked = tracker.update(two, timestamp=0.0)
        >>> tracked.track_id.tolist(), tracker.removed_track_ids
        ([1, 2], ())
        >>> for i in range(1, 32):
        ...     tracked = tracker.update(Detections.empty(), timestamp=i / 10)
        ...     if tracker.removed_track_ids: break
        >>> tracked.track_id.tolist(), tracker.removed_track_ids, i / 10
        ([], (1, 2), 2.1)
    """

    def __init__(self, camera_id: str, frame_rate: float = 30.0, settings: TrackerSettings | None = None) -> None:
        if not frame_rate > 0:
            raise ValueError(f"frame_rate must be > 0, got {frame_rate}")
        self.camera_id = camera_id
        self.frame_rate = float(frame_rate)
        self.settings = settings or TrackerSettings()
        self._kalman = BoxKalman()
        self._public_ids: Iterator[int] = itertools.count(1)
        self._tracks: list[_Track] = []
        self._now: float | None = None  # stream time of the last update, made monotonic
        self._clock_offset = 0.0  # added to timestamps after the stream clock went backwards
        self.removed_track_ids: tuple[int, ...] = ()
        self.frames_seen = 0

    # ------------------------------------------------------------------------------- public API
    def update(self, detections: Detections, timestamp: float | None = None) -> Detections:
        """Associate this frame's ``detections``; return the tracked ones with ``track_id`` set.

        ``timestamp`` is the frame's stream time in seconds (``Frame.timestamp``); ``None`` means one
        nominal frame interval (``1 / frame_rate``) after the previous update.
        """
        live_before = self.live_track_ids
        first_frame = self._now is None
        now, steps = self._advance_clock(timestamp)
        self.frames_seen += 1
        for track in self._tracks:
            track.row = -1
        self._predict(steps)
        self._associate(detections, now, first_frame)

        out = sorted((t for t in self._tracks if t.confirmed and not t.lost and t.row >= 0), key=lambda t: t.row)
        for track in out:  # numbered when first published, in detection order: no gaps in the ids
            if track.public_id is None:
                track.public_id = next(self._public_ids)
        self.removed_track_ids = tuple(sorted(live_before - self.live_track_ids))
        if not out:
            return Detections.empty()
        rows = np.asarray([t.row for t in out], np.int64)
        return Detections(
            detections.xyxy[rows],
            detections.confidence[rows],
            detections.class_id[rows],
            np.asarray([t.public_id for t in out], np.int64),
        )

    @property
    def live_track_ids(self) -> frozenset[int]:
        """Ids of tracks that are tracked or lost-but-recoverable after the last update."""
        return frozenset(t.public_id for t in self._tracks if t.public_id is not None)

    def reset(self) -> None:
        """Forget all tracks (e.g. after a camera reconnects); ids keep counting up, never reused."""
        self.removed_track_ids = tuple(sorted(self.live_track_ids))
        self._tracks = []
        self._now = None
        self._clock_offset = 0.0

    # ------------------------------------------------------------------------------- internals
    def _advance_clock(self, timestamp: float | None) -> tuple[float, float]:
        """This update's stream time (never going backwards) and the frame steps since the last one."""
        nominal = 1.0 / self.frame_rate
        if self._now is None:
            self._now = 0.0 if timestamp is None or not math.isfinite(timestamp) else float(timestamp)
            return self._now, 1.0
        if timestamp is None or not math.isfinite(timestamp):
            now = self._now + nominal
        else:
            now = float(timestamp) + self._clock_offset
            if now <= self._now:
                # The stream's clock restarted or repeated (reconnect, duplicate timestamp): count one
                # nominal frame and measure later timestamps from here.
                self._clock_offset += self._now + nominal - now
                now = self._now + nominal
        steps = (now - self._now) * self.frame_rate
        self._now = now
        return now, steps

    def _predict(self, steps: float) -> None:
        # Tentative tracks are matched where they were first seen (they live one frame unless confirmed).
        tracks = [t for t in self._tracks if t.confirmed]
        if not tracks:
            return
        mean = np.array([t.mean for t in tracks])
        cov = np.array([t.cov for t in tracks])
        lost = np.asarray([t.lost for t in tracks])
        mean[lost, 7] = 0.0  # a lost box keeps its size: no height velocity while unseen
        mean, cov = self._kalman.predict(mean, cov, np.full(len(mean), steps))
        _set_states(tracks, mean, cov)

    def _correct(self, pairs: list[tuple[_Track, int]], detections: Detections, now: float) -> None:
        """Kalman-correct each matched track with its detection; the track is (again) tracked."""
        if not pairs:
            return
        tracks = [t for t, _ in pairs]
        rows = np.asarray([r for _, r in pairs], np.int64)
        mean, cov = self._kalman.update(
            np.array([t.mean for t in tracks]), np.array([t.cov for t in tracks]), xyxy_to_xyah(detections.xyxy[rows])
        )
        _set_states(tracks, mean, cov)
        for track, row in zip(tracks, rows.tolist(), strict=True):
            track.row = row
            track.last_seen, track.lost, track.confirmed = now, False, True

    def _associate(self, detections: Detections, now: float, first_frame: bool) -> None:
        s = self.settings
        scores = detections.confidence.astype(np.float64)
        high = np.flatnonzero(scores >= s.track_high_thresh)
        low = np.flatnonzero((scores > s.track_low_thresh) & (scores < s.track_high_thresh))
        boxes = detections.xyxy

        # 1. Confident detections against confirmed tracks, tracked or lost.
        pool = [t for t in self._tracks if t.confirmed]
        cost = self._cost(pool, boxes[high], scores[high] if s.fuse_score else None, now)
        matches, unmatched_pool, unmatched_high = _assign(cost, s.match_thresh)
        self._correct([(pool[i], int(high[j])) for i, j in matches], detections, now)

        # 2. Low-confidence detections keep tracks that were tracked until now (occlusion, blur).
        still = [pool[i] for i in unmatched_pool if not pool[i].lost]
        matches, unmatched_still, _ = _assign(self._cost(still, boxes[low], None, now), _LOW_SCORE_MATCH_THRESH)
        self._correct([(still[i], int(low[j])) for i, j in matches], detections, now)
        for i in unmatched_still:
            still[i].lost = True

        # 3. Remaining confident detections confirm tentative tracks; unconfirmed leftovers are dropped.
        left = high[unmatched_high]
        tentative = [t for t in self._tracks if not t.confirmed]
        cost = self._cost(tentative, boxes[left], scores[left] if s.fuse_score else None, now)
        matches, unmatched_tentative, unmatched_left = _assign(cost, _TENTATIVE_MATCH_THRESH)
        self._correct([(tentative[i], int(left[j])) for i, j in matches], detections, now)
        dropped = {id(tentative[i]) for i in unmatched_tentative}

        # 4. New tracks; 5. lost tracks past their lifetime end; 6. duplicates of a lost track end.
        expired = {id(t) for t in self._tracks if t.lost and now - t.last_seen > s.lost_track_s}
        self._tracks = [t for t in self._tracks if id(t) not in dropped and id(t) not in expired]
        new_rows = [int(left[j]) for j in unmatched_left if scores[left[j]] >= s.new_track_thresh]
        if new_rows:
            rows = np.asarray(new_rows, np.int64)
            mean, cov = self._kalman.initiate(xyxy_to_xyah(boxes[rows]))
            for row, m, c, box in zip(new_rows, mean, cov, xyah_to_xyxy(mean[:, :4]), strict=True):
                track = _Track(m, c, box, first_seen=now, last_seen=now, confirmed=first_frame, row=row)
                self._tracks.append(track)
        self._drop_duplicates(now)

    def _cost(self, tracks: list[_Track], boxes: np.ndarray, scores: np.ndarray | None, now: float) -> np.ndarray:
        """Matching cost of tracks and detections: ``1 - IoU`` (buffered by the time since each track was
        last seen, score-fused if ``scores`` are given); 1 (never matched) beyond a track's reach."""
        s = self.settings
        elapsed = np.asarray([now - t.last_seen for t in tracks], np.float64)
        buffers = np.minimum(elapsed * s.match_buffer_per_s, _MAX_BUFFER) if s.match_buffer_per_s > 0 else None
        track_boxes = _boxes(tracks)
        cost = _iou_cost(track_boxes, boxes, buffers)
        if not cost.size:
            return cost
        if scores is not None:
            cost = 1.0 - (1.0 - cost) * scores[None, :]
        if s.max_speed is not None:
            # A buffered box overlaps far-away people too: no one moves further than this since last seen.
            cost[_too_far(track_boxes, boxes, _REACH_BASE + s.max_speed * elapsed)] = 1.0
        return cost

    def _drop_duplicates(self, now: float) -> None:
        """A lost track re-found as a new one: of two that overlap almost fully, keep the longer-lived."""
        tracked = [t for t in self._tracks if not t.lost]
        lost = [t for t in self._tracks if t.lost]
        if not tracked or not lost:
            return
        cost = _iou_cost(_boxes(tracked), _boxes(lost))
        gone: set[int] = set()
        for i, j in zip(*np.nonzero(cost < _DUPLICATE_THRESH), strict=True):
            a, b = tracked[i], lost[j]
            gone.add(id(b) if now - a.first_seen > now - b.first_seen else id(a))
        self._tracks = [t for t in self._tracks if id(t) not in gone]
