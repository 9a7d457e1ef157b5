"""The newest processed frame of each camera, kept by reference and encoded only when someone asks.

The pipeline thread hands each processed frame with its track overlay to :meth:`LiveFrames.put` (a
dictionary assignment: no copy, no encoding). ``GET /cameras/{id}/latest.jpg`` and the MJPEG stream ask
for the newest one as a JPEG of a :class:`LiveView` (:meth:`LiveFrames.latest_jpeg`, which calls
:func:`render_live_jpeg`), so a camera nobody watches costs nothing. With compute processes the frame is
encoded where it lives and only the JPEG crosses to the service's process
(:class:`~actwatch.service.shards.ShardLiveFrames`).

Many viewers of one camera share its encodes: a JPEG of a view is kept, and served to every viewer that
has not had it while it is the newest frame or younger than ``share_s`` (``media.live_share_ms``), so a
wall of dashboards costs at most ``1 / share_s`` encodes a second per camera and view, not one per
viewer and request; viewers asking at once wait for one encode. A viewer that already has the kept JPEG
(an MJPEG stream) gets the newest frame.

Example:
    >>> import numpy as np
    >>> from actwatch.service.events import FrameOverlay, TrackOverlay
    >>> frames = LiveFrames()
    >>> tracks = (TrackOverlay(7, (10.0, 10.0, 60.0, 100.0), 0.9),)
    >>> frames.put(np.zeros((120, 160, 3), np.uint8), FrameOverlay("door", 5.0, tracks))
    >>> latest = frames.latest("door")
    >>> latest.sequence, frames.latest("hall")
    (1, None)
    >>> render_live_jpeg(latest, overlay=True, width=80)[:2]
    b'\\xff\\xd8'
    >>> view = LiveView(overlay=True, width=80)
    >>> frames.latest_jpeg("door", view).sequence, frames.latest_jpeg("door", view, known_sequence=1)
    (1, None)
    >>> frames.latest_jpeg("door", view) is frames.latest_jpeg("door", view)  # one encode, shared
    True
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np

from actwatch.service.events import FrameOverlay

_BOX_NEW = (94, 197, 34)  # BGR: a track not classified yet
_BOX_LABELLED = (22, 115, 249)  # BGR: a track with a label


@dataclass(frozen=True, slots=True, eq=False)
class LiveFrame:
    """One processed frame of a camera with its tracks; ``sequence`` counts the camera's frames (from 1)."""

    image: np.ndarray = field(repr=False)
    overlay: FrameOverlay
    sequence: int


@dataclass(frozen=True, slots=True)
class LiveView:
    """How a client asked to see a live frame: boxes drawn or not, shrunk to ``width`` (never enlarged)."""

    overlay: bool = False
    width: int | None = None
    quality: int = 80  # JPEG quality (media.jpeg_quality)


@dataclass(frozen=True, slots=True)
class LiveJpeg:
    """A camera's frame number ``sequence``, encoded for a :class:`LiveView`."""

    sequence: int
    jpeg: bytes = field(repr=False)


class LiveFrameSource(Protocol):
    """Where the API reads each camera's newest processed frame: :class:`LiveFrames` in a one-process
    service, :class:`~actwatch.service.shards.ShardLiveFrames` (asks the camera's compute process) otherwise.
    ``latest_jpeg`` may block briefly (encoding, or a compute process's answer): the API calls it in a
    worker thread."""

    def latest_jpeg(self, camera_id: str, view: LiveView, known_sequence: int = 0) -> LiveJpeg | None:
        """The newest frame encoded for ``view``; ``None`` when there is none, or it is still the one
        numbered ``known_sequence`` (nothing is encoded then)."""
        ...

    def forget(self, camera_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class _Encoded:
    jpeg: LiveJpeg
    at: float  # when it was encoded (the clock of LiveFrames)


class LiveFrames:
    """The newest :class:`LiveFrame` per camera; thread-safe (the pipeline writes, the API reads).

    ``share_s``: how long a JPEG of a view is served to other viewers after a newer frame came (see the
    module); ``max_views``: JPEGs kept per camera (a view is a size and overlay; the oldest goes first);
    ``clock``: monotonic seconds (passed in so a test can move time)."""

    def __init__(
        self, share_s: float = 0.1, *, max_views: int = 8, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._share_s = share_s
        self._max_views = max_views
        self._clock = clock
        self._lock = threading.Lock()
        self._frames: dict[str, LiveFrame] = {}
        self._encoded: dict[str, dict[LiveView, _Encoded]] = {}
        self._encoding: dict[str, threading.Lock] = {}  # per camera: viewers asking at once share one encode

    def put(self, image: np.ndarray, overlay: FrameOverlay) -> None:
        with self._lock:
            previous = self._frames.get(overlay.camera_id)
            sequence = previous.sequence + 1 if previous is not None else 1
            self._frames[overlay.camera_id] = LiveFrame(image, overlay, sequence)

    def latest(self, camera_id: str) -> LiveFrame | None:
        with self._lock:
            return self._frames.get(camera_id)

    def latest_jpeg(self, camera_id: str, view: LiveView, known_sequence: int = 0) -> LiveJpeg | None:
        frame = self.latest(camera_id)
        if frame is None or frame.sequence == known_sequence:
            return None
        with self._lock:
            encoding = self._encoding.setdefault(camera_id, threading.Lock())
        with encoding:
            with self._lock:
                frame = self._frames.get(camera_id)
                kept = self._encoded.get(camera_id, {}).get(view)
            if frame is None:  # forgotten while this waited
                return None
            now = self._clock()
            if (
                kept is not None
                and kept.jpeg.sequence > known_sequence  # the viewer has not had it
                and (kept.jpeg.sequence == frame.sequence or now - kept.at < self._share_s)
            ):
                return kept.jpeg
            jpeg = LiveJpeg(
                frame.sequence, render_live_jpeg(frame, overlay=view.overlay, width=view.width, quality=view.quality)
            )
            with self._lock:
                if self._frames.get(camera_id) is not None:  # not forgotten meanwhile
                    views = self._encoded.setdefault(camera_id, {})
                    views[view] = _Encoded(jpeg, now)
                    if len(views) > self._max_views:
                        del views[min(views, key=lambda v: views[v].at)]
            return jpeg

    def forget(self, camera_id: str) -> None:
        """Drop a removed camera's frame and its JPEGs."""
        with self._lock:
            self._frames.pop(camera_id, None)
            self._encoded.pop(camera_id, None)
            self._encoding.pop(camera_id, None)


def draw_tracks(image: np.ndarray, overlay: FrameOverlay, scale: float = 1.0) -> None:
    """Draw ``overlay``'s boxes, track ids and labels onto ``image`` in place (boxes scaled by ``scale``)."""
    thickness = max(1, round(max(image.shape[:2]) / 400))
    font_scale = max(0.4, max(image.shape[:2]) / 1400)
    for track in overlay.tracks:
        x1, y1, x2, y2 = (round(v * scale) for v in track.bbox)
        color = _BOX_LABELLED if track.label else _BOX_NEW
        cv2.rectangle(image, (x1, y1), (x2, y2), color, thickness)
        caption = f"#{track.track_id}" + (f" {track.label} {track.score:.2f}" if track.label else "")
        (tw, th), base = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        top = y1 - th - base - 2 if y1 - th - base - 2 >= 0 else y1
        cv2.rectangle(image, (x1, top), (x1 + tw + 4, top + th + base + 2), color, cv2.FILLED)
        cv2.putText(image, caption, (x1 + 2, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), 1)


def render_live_jpeg(frame: LiveFrame, *, overlay: bool = False, width: int | None = None, quality: int = 80) -> bytes:
    """``frame`` as a JPEG, shrunk to ``width`` pixels wide (never enlarged), boxes drawn if ``overlay``."""
    image = frame.image
    h, w = image.shape[:2]
    scale = min(1.0, width / w) if width else 1.0
    if scale < 1.0:
        image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    elif overlay:
        image = image.copy()  # the pipeline's frame is shared: draw on a copy
    if overlay:
        draw_tracks(image, frame.overlay, scale)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding of the live frame failed")
    return buf.tobytes()
