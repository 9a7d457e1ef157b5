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

from collections.abc import Sequence

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


def box_thumbnails(image: np.ndarray, boxes_xyxy: np.ndarray) -> np.ndarray:
    """The thumbnail of each ``x1 y1 x2 y2`` box of a frame (unpadded), as :func:`crop_thumbnail` makes it,
    as one ``(N, THUMBNAIL_SIZE, THUMBNAIL_SIZE)`` array (all boxes in one grey conversion: this runs for
    every camera's every frame).

    Example:
        >>> box_thumbnails(np.zeros((120, 160, 3), np.uint8), np.array([[10, 10, 50, 90]])).shape
        (1, 16, 16)
    """
    side = THUMBNAIL_SIZE
    crops = crop_boxes(image, boxes_xyxy, (side, side), pad=0.0)  # (N, side, side, 3): resized as crop_thumbnail
    if not len(crops):
        return np.zeros((0, side, side), np.float32)
    grey = cv2.cvtColor(crops.reshape(-1, side, 3), cv2.COLOR_BGR2GRAY).reshape(-1, side, side)
    return grey.astype(np.float32) / np.float32(255.0)


def box_motion(a: np.ndarray, b: np.ndarray) -> float:
    """The largest change of centre x, centre y, width or height between two ``x1 y1 x2 y2`` boxes, in
    their mean longer side.

    Example:
        >>> box_motion(np.array([0, 0, 10, 20]), np.array([2, 0, 12, 20]))
        0.1
    """
    return float(box_motions(np.asarray(a, np.float64).reshape(1, 4), np.asarray(b, np.float64))[0])


def box_motions(boxes: np.ndarray, box: np.ndarray) -> np.ndarray:
    """:func:`box_motion` of each of ``boxes`` ``(N, 4)`` against one ``box``, in one go.

    Example:
        >>> box_motions(np.array([[0.0, 0, 10, 20], [0, 0, 10, 20]]), np.array([0.0, 0, 10, 40])).tolist()
        [0.666666667, 0.666666667]
    """
    a = np.asarray(boxes, np.float64).reshape(-1, 4)
    b = np.asarray(box, np.float64).reshape(4)
    # The longer side: a person's height upright, and still its length lying (the cloth, a fallen person),
    # where a pixel of jitter on the short side would otherwise count as a large move.
    a_wh = a[:, 2:] - a[:, :2]
    b_wh = b[2:] - b[:2]
    size = np.maximum((a_wh.max(axis=1) + b_wh.max()) / 2.0, 1e-6)
    change = np.maximum(np.abs((a[:, :2] + a[:, 2:]) - (b[:2] + b[2:])) / 2, np.abs(a_wh - b_wh)).max(axis=1)
    return np.round(change / size, 9)


class _History:
    """One track's kept sightings, oldest first, as arrays: the newest is compared with all of them at once
    (a loop over them, per track and frame, was the track thread's largest cost at many cameras)."""

    __slots__ = ("boxes", "end", "start", "thumbs", "times")

    def __init__(self, thumb_shape: tuple[int, ...], capacity: int = 40) -> None:
        self.times = np.zeros(capacity, np.float64)
        self.boxes = np.zeros((capacity, 4), np.float64)
        self.thumbs = np.zeros((capacity, *thumb_shape), np.float32)
        self.start = self.end = 0  # the kept sightings are rows start..end-1

    def __len__(self) -> int:
        return self.end - self.start

    @property
    def thumb_shape(self) -> tuple[int, ...]:
        return tuple(self.thumbs.shape[1:])

    def first_time(self) -> float:
        return float(self.times[self.start])

    def second_time(self) -> float:
        return float(self.times[self.start + 1])

    def last_time(self) -> float:
        return float(self.times[self.end - 1])

    def append(self, timestamp: float, box: np.ndarray, thumb: np.ndarray) -> None:
        if self.end == len(self.times):  # full at the back: move the kept rows to the front, or grow
            n = len(self)
            if 2 * n > len(self.times):
                self.times, self.boxes, self.thumbs = (
                    np.concatenate([a[self.start : self.end], np.zeros_like(a[self.start : self.end])])
                    for a in (self.times, self.boxes, self.thumbs)
                )
            else:
                for a in (self.times, self.boxes, self.thumbs):
                    a[:n] = a[self.start : self.end]
            self.start, self.end = 0, n
        self.times[self.end], self.boxes[self.end], self.thumbs[self.end] = timestamp, box, thumb
        self.end += 1

    def popleft(self) -> None:
        self.start += 1

    def clear(self) -> None:
        self.start = self.end = 0

    def still(self, box: np.ndarray, thumb: np.ndarray, max_motion: float, max_change: float) -> bool:
        """Whether ``box`` and ``thumb`` are within those bounds of every kept sighting."""
        rows = slice(self.start, self.end)
        if (box_motions(self.boxes[rows], box) > max_motion).any():
            return False
        return not bool((np.abs(self.thumbs[rows] - thumb).mean(axis=(1, 2)) > max_change).any())


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
        self._tracks: dict[int, _History] = {}
        self._min_spacing = settings.min_duration_s / 30.0

    @property
    def track_count(self) -> int:
        return len(self._tracks)

    def update(self, track_id: int, box_xyxy: np.ndarray, thumb: np.ndarray, timestamp: float) -> bool:
        """Record a sighting of ``track_id``; True if the track is static now (always False if disabled)."""
        s = self.settings
        if not s.enabled:
            return False
        box = np.asarray(box_xyxy, np.float64).reshape(4)
        thumb = np.asarray(thumb, np.float32)
        history = self._tracks.get(int(track_id))
        if history is None or history.thumb_shape != thumb.shape:
            history = self._tracks[int(track_id)] = _History(thumb.shape)
        now = float(timestamp)
        if len(history) and now < history.last_time():
            history.clear()  # the stream clock went back: earlier sightings are not comparable
        static = self._still_since(history, box, thumb, now - s.min_duration_s)
        if not len(history) or now - history.last_time() >= self._min_spacing:
            history.append(now, box, thumb)
        # Keep one sighting at or before the start of the span, so the span can be checked next time.
        while len(history) >= 2 and history.second_time() <= now - s.min_duration_s:
            history.popleft()
        return static

    def end(self, track_id: int) -> None:
        """Forget ``track_id`` (the tracker ended it); a later track with that id starts afresh."""
        self._tracks.pop(int(track_id), None)

    def _still_since(self, history: _History, box: np.ndarray, thumb: np.ndarray, start: float) -> bool:
        if not len(history) or history.first_time() > start + 1e-9:
            return False  # not seen for long enough yet
        return history.still(box, thumb, self.settings.max_box_motion, self.settings.max_crop_change)


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
