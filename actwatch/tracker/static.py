"""Static tracks: a "person" whose box has not moved and whose crop has not changed for a while.

The detector sometimes sees a person in something that never moves (on OpenCV's ``vtest.avi``, the
yellow cloth on the grass is a person all clip long, and so is a rock for a few seconds). Such a track
is *static*: over the last :attr:`StaticSettings.min_duration_s` seconds of stream time its box moved
less than :attr:`StaticSettings.max_box_motion` box sizes (centre and size; a box's size is its longer
side) and its small grey thumbnail changed by less than :attr:`StaticSettings.max_crop_change` (mean
absolute difference, 0..1).

A person standing still still moves a little (weight shifts, arms, head): measured on ``vtest.avi`` with
the default detector and tracker at 10 fps, over every 3 s stretch of every track, the cloth and the rock
stay below 0.03 box sizes and 0.02 crop change most of the time, while the stillest 3 s of any real
person (people waiting or chatting) moved at least 0.05 box sizes with a crop change of at least
0.05. The defaults (3 s, 0.05, 0.04) sit between the two (README, "Static tracks").

What the flag changes: static tracks are not classified by the live pipeline and not extracted for
training. What it never changes: behaviour signals (``fallen`` included, since a fallen person lies still
too) run on every track, static or not.

Example (a box that never moves, with the same thumbnail, is static after 3 s; one that walks is not):
    >>> flags = StaticTrackFilter(StaticSettings())
    >>> still, thumb = np.array([100.0, 100.0, 140.0, 200.0]), np.full((16, 16), 0.5, np.float32)
    >>> [flags.update(1, still, thumb, t / 10) for t in (0, 10, 20, 30)]
    [False, False, False, True]
    >>> [flags.update(2, still + [5.0 * t, 0, 5.0 * t, 0], thumb, t / 10) for t in range(0, 40, 10)]
    [False, False, False, False]
    >>> flags.end(1); flags.update(1, still, thumb, 4.0)  # a new track under that id starts afresh
    False
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from pydantic import ConfigDict, Field

from actwatch.settings import StrictModel
from actwatch.tracker.crops import crop_boxes
from actwatch.tracker.detections import Detections

THUMBNAIL_SIZE = 16
"""Side of the square grey thumbnail the rule compares (small: texture noise and JPEG blocks average out)."""


class StaticSettings(StrictModel):
    """When a track counts as static (not classified, not extracted); defaults measured on vtest.avi.

    Example:
        >>> StaticSettings().min_duration_s, StaticSettings(enabled=False).enabled
        (3.0, False)
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        True,
        description="Flag static tracks; flagged tracks are not classified and not extracted "
        "(behaviour signals such as fallen still run on them).",
    )
    min_duration_s: float = Field(
        3.0, gt=0.0, description="Seconds of stream time a box must stay still before its track is static."
    )
    max_box_motion: float = Field(
        0.05,
        ge=0.0,
        description="Largest change of box centre or size over that time, in box sizes (the box's longer "
        "side), of a static track.",
    )
    max_crop_change: float = Field(
        0.04,
        ge=0.0,
        le=1.0,
        description="Largest mean absolute difference (0..1) of the track's small grey thumbnails over that "
        "time, of a static track.",
    )


def crop_thumbnail(crop: np.ndarray) -> np.ndarray:
    """The small grey float thumbnail (``THUMBNAIL_SIZE`` square, values 0..1) the rule compares.

    ``crop`` is a BGR (or grey) uint8 image of the box, any size.

    Example:
        >>> t = crop_thumbnail(np.full((64, 32, 3), 255, np.uint8))
        >>> t.shape, t.dtype, float(t.max())
        ((16, 16), dtype('float32'), 1.0)
    """
    image = np.asarray(crop)
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.size == 0:
        return np.zeros((THUMBNAIL_SIZE, THUMBNAIL_SIZE), np.float32)
    small = cv2.resize(image, (THUMBNAIL_SIZE, THUMBNAIL_SIZE), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32) / 255.0


def box_thumbnails(image: np.ndarray, boxes_xyxy: np.ndarray) -> list[np.ndarray]:
    """The thumbnail of each ``x1 y1 x2 y2`` box of a frame (unpadded), as :func:`crop_thumbnail` makes it.

    Example:
        >>> [t.shape for t in box_thumbnails(np.zeros((120, 160, 3), np.uint8), np.array([[10, 10, 50, 90]]))]
        [(16, 16)]
    """
    crops = crop_boxes(image, boxes_xyxy, (THUMBNAIL_SIZE, THUMBNAIL_SIZE), pad=0.0)
    return [crop_thumbnail(crop) for crop in crops]


def box_motion(a: np.ndarray, b: np.ndarray) -> float:
    """The largest change of centre x, centre y, width or height between two ``x1 y1 x2 y2`` boxes, in
    their mean longer side.

    Example:
        >>> box_motion(np.array([0, 0, 10, 20]), np.array([2, 0, 12, 20]))
        0.1
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    # The longer side: a person's height upright, and still its length lying (the cloth, a fallen person),
    # where a pixel of jitter on the short side would otherwise count as a large move.
    size = max((max(a[2] - a[0], a[3] - a[1]) + max(b[2] - b[0], b[3] - b[1])) / 2.0, 1e-6)
    ca = np.array([(a[0] + a[2]) / 2, (a[1] + a[3]) / 2, a[2] - a[0], a[3] - a[1]])
    cb = np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2, b[2] - b[0], b[3] - b[1]])
    return round(float(np.abs(ca - cb).max() / size), 9)


@dataclass(frozen=True, slots=True, eq=False)
class _Sighting:
    timestamp: float
    box: np.ndarray
    thumb: np.ndarray


class StaticTrackFilter:
    """The online static rule of one camera: state per track, freed when the track ends.

    :meth:`update` with every sighting of a track (its box, the thumbnail of its box, the frame's stream
    time) says whether the track is static now: its sightings span at least ``min_duration_s`` and every
    one of them in that span is within ``max_box_motion`` and ``max_crop_change`` of the newest.
    Sightings closer than a thirtieth of that span to the last kept one are not stored (bounded memory at
    any frame rate).
    """

    def __init__(self, settings: StaticSettings) -> None:
        self.settings = settings
        # per track: its sightings over the last min_duration_s, plus the one just before that span
        self._tracks: dict[int, deque[_Sighting]] = {}
        self._min_spacing = settings.min_duration_s / 30.0

    @property
    def track_count(self) -> int:
        return len(self._tracks)

    def update(self, track_id: int, box_xyxy: np.ndarray, thumb: np.ndarray, timestamp: float) -> bool:
        """Record a sighting of ``track_id``; True if the track is static now (always False if disabled)."""
        s = self.settings
        if not s.enabled:
            return False
        history = self._tracks.setdefault(int(track_id), deque())
        now = float(timestamp)
        if history and now < history[-1].timestamp:
            history.clear()  # the stream clock went back: earlier sightings are not comparable
        box = np.asarray(box_xyxy, np.float64).reshape(4)
        thumb = np.asarray(thumb, np.float32)
        static = self._still_since(history, box, thumb, now - s.min_duration_s)
        if not history or now - history[-1].timestamp >= self._min_spacing:
            history.append(_Sighting(now, box, thumb))
        # Keep one sighting at or before the start of the span, so the span can be checked next time.
        while len(history) >= 2 and history[1].timestamp <= now - s.min_duration_s:
            history.popleft()
        return static

    def end(self, track_id: int) -> None:
        """Forget ``track_id`` (the tracker ended it); a later track with that id starts afresh."""
        self._tracks.pop(int(track_id), None)

    def _still_since(self, history: deque[_Sighting], box: np.ndarray, thumb: np.ndarray, start: float) -> bool:
        if not history or history[0].timestamp > start + 1e-9:
            return False  # not seen for long enough yet
        s = self.settings
        for sighting in history:
            if box_motion(sighting.box, box) > s.max_box_motion:
                return False
            if sighting.thumb.shape != thumb.shape or float(np.abs(sighting.thumb - thumb).mean()) > s.max_crop_change:
                return False
        return True


def is_static_sequence(
    boxes: np.ndarray, thumbs: Sequence[np.ndarray], timestamps: np.ndarray, settings: StaticSettings
) -> bool:
    """Whether a whole recorded track is static (extraction skips it): the online rule, run over its
    samples, flags at least half of those that come after its first ``min_duration_s``.

    A track shorter than ``min_duration_s`` is never static; with ``settings.enabled`` false, nothing is.

    Example (the cloth: 5 s without moving; a walker: 5 s moving one box height per second):
        >>> t = np.arange(0, 5.0, 0.5)
        >>> thumbs = [np.full((16, 16), 0.3, np.float32)] * len(t)
        >>> still = np.tile([100.0, 100.0, 140.0, 200.0], (len(t), 1))
        >>> walking = still + np.outer(t * 100, [1, 0, 1, 0])
        >>> settings = StaticSettings()
        >>> is_static_sequence(still, thumbs, t, settings), is_static_sequence(walking, thumbs, t, settings)
        (True, False)
    """
    times = np.asarray(timestamps, np.float64).reshape(-1)
    rows = np.asarray(boxes, np.float64).reshape(-1, 4)
    if len(times) != len(rows) or len(times) != len(thumbs):
        raise ValueError(f"boxes ({len(rows)}), thumbs ({len(thumbs)}) and timestamps ({len(times)}) must match")
    if not settings.enabled or len(times) == 0 or times[-1] - times[0] < settings.min_duration_s:
        return False
    rule = StaticTrackFilter(settings)
    flags = [rule.update(0, box, thumb, t) for box, thumb, t in zip(rows, thumbs, times, strict=True)]
    eligible = [flag for flag, t in zip(flags, times, strict=True) if t - times[0] >= settings.min_duration_s - 1e-9]
    return bool(eligible) and 2 * sum(eligible) >= len(eligible)


class StaticTracks:
    """The static rule of every camera (one :class:`StaticTrackFilter` each); a track-end listener.

    The pipeline's track phase calls :meth:`flags` with each camera's tracked detections; the ends of
    tracks and cameras free the state (:class:`~actwatch.tracker.track_end.TrackEndListener`).

    Example (the cloth of vtest.avi, a box that never moves, is static after ``min_duration_s``):
        >>> from actwatch.tracker.detections import Detections
        >>> tracks = StaticTracks(StaticSettings(min_duration_s=1.0))
        >>> cloth = Detections.from_arrays([[60, 490, 165, 532]], [0.5], [1], [3])
        >>> image = np.full((576, 768, 3), 90, np.uint8)
        >>> [tracks.flags("cam1", image, cloth, t / 2).tolist() for t in range(3)]
        [[False], [False], [True]]
        >>> tracks.end_tracks("cam1", [3]); tracks.flags("cam1", image, cloth, 1.5).tolist()
        [False]
    """

    def __init__(self, settings: StaticSettings) -> None:
        self.settings = settings
        self._cameras: dict[str, StaticTrackFilter] = {}

    def flags(self, camera_id: str, image: np.ndarray, tracked: Detections, timestamp: float) -> np.ndarray:
        """One bool per row of ``tracked`` (a frame's tracked detections): whether its track is static now."""
        static = np.zeros(len(tracked), bool)
        if not self.settings.enabled or not len(tracked):
            return static
        rule = self._cameras.get(camera_id)
        if rule is None:
            rule = self._cameras[camera_id] = StaticTrackFilter(self.settings)
        thumbs = box_thumbnails(image, tracked.xyxy)
        for row, (track_id, box, thumb) in enumerate(zip(tracked.track_id.tolist(), tracked.xyxy, thumbs, strict=True)):
            static[row] = rule.update(track_id, box, thumb, timestamp)
        return static

    def end_tracks(self, camera_id: str, track_ids: Sequence[int]) -> None:
        rule = self._cameras.get(camera_id)
        if rule is not None:
            for track_id in track_ids:
                rule.end(track_id)

    def drop_camera(self, camera_id: str) -> None:
        self._cameras.pop(camera_id, None)
