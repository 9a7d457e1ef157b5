"""A finite, lock-step frame source: the caller decides when the next frame is read.

:class:`ReplayReader` has the parts of :class:`~actwatch.capture.reader.CameraReader` the pipeline uses
(``frames``, ``start``, ``stop``, ``status``, ``source``) but no thread: :meth:`ReplayReader.feed` reads
one frame and hands it on. Tests and the benchmark replay a clip through the very same pipeline code
frame by frame, deterministically and without drops.

Example:
    >>> reader = ReplayReader("cam1", "/root/.cache/actwatch/samples/vtest.avi", max_frames=2)  # doctest: +SKIP
    >>> reader.feed(), reader.feed(), reader.feed()  # doctest: +SKIP
    (True, True, False)
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2

from actwatch.capture.frame import Frame
from actwatch.capture.handoff import DropOldestQueue
from actwatch.capture.reader import CameraState, CameraStatus
from actwatch.capture.sources import SourceSpec
from actwatch.errors import SourceError


class ReplayReader:
    """Reads a video file one frame per :meth:`feed` call; loops ``loop`` times more at the end."""

    def __init__(self, camera_id: str, path: str | Path, *, max_frames: int | None = None, loop: bool = False) -> None:
        self.camera_id = camera_id
        self.source = SourceSpec.parse(str(path))
        self.frames: DropOldestQueue[Frame] = DropOldestQueue(maxsize=2)
        self._max_frames = max_frames
        self._loop = loop
        self._capture = cv2.VideoCapture(self.source.url)
        if not self._capture.isOpened():
            raise SourceError(f"cannot open video file {self.source.masked}")
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self.frame_rate: float | None = fps if fps and fps > 0 else None  # the file's own fps
        self._interval = 1.0 / fps if fps and fps > 0 else 0.1
        self._index = 0
        self._loop_offset = 0.0
        self._last_ts = -1.0
        self._state = CameraState.STREAMING
        self.loops = 0

    def start(self) -> None:
        """Nothing to start: frames come from :meth:`feed`."""

    def stop(self, timeout: float = 0.0) -> None:
        if self._state is CameraState.STREAMING:
            self._state = CameraState.STOPPED
            self.frames.close()
        self._capture.release()

    def feed(self) -> bool:
        """Read the next frame onto ``frames``; at the end put ``END`` and return False."""
        if self._state is not CameraState.STREAMING:
            return False
        if self._max_frames is not None and self._index >= self._max_frames:
            return self._end()
        ok, image = self._capture.read()
        if not ok and self._loop and self._index > 0:
            self.loops += 1
            self._loop_offset = self._last_ts + self._interval
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self._capture.read()
        if not ok or image is None:
            return self._end()
        ts = self._loop_offset + self._capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        self._last_ts = ts
        self.frames.put(Frame(self.camera_id, self._index, ts, time.time(), image))
        self._index += 1
        return True

    def _end(self) -> bool:
        self._state = CameraState.ENDED
        self.frames.close()
        self._capture.release()
        return False

    def status(self) -> CameraStatus:
        return CameraStatus(
            camera_id=self.camera_id,
            url=self.source.masked,
            state=self._state,
            last_error=None,
            frames_read=self._index,
            frames_dropped=self.frames.dropped,
            fps=0.0,
            reconnects=0,
            last_frame_wall_time=None,
        )
