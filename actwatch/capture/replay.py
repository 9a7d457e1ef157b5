"""A finite, lock-step frame source: the caller decides when the next frame is read.

:class:`ReplayReader` has the parts of :class:`~actwatch.capture.reader.CameraReader` the pipeline uses
(``frames``, ``start``, ``stop``, ``status``, ``source``) but no thread: :meth:`ReplayReader.feed` reads
one frame and hands it on. Tests and the benchmark replay a clip through the very same pipeline code
frame by frame, deterministically and without drops. Frames and timestamps come from
:func:`~actwatch.capture.video_file.capture_frames`, as for a file camera of the service.

Example:
    >>> import tempfile, cv2, numpy as np
    >>> clip = f"{tempfile.mkdtemp()}/clip.avi"
    >>> out = cv2.VideoWriter(clip, cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (32, 24))
    >>> for _ in range(2):
    ...     _ = out.write(np.zeros((24, 32, 3), np.uint8))
    >>> out.release()
    >>> reader = ReplayReader("cam1", clip, max_frames=3, loop=True)  # 2 frames, then 1 of the 2nd pass
    >>> stamps = []
    >>> while reader.feed():
    ...     stamps.append(round(reader.frames.get().timestamp, 3))
    >>> stamps, reader.loops, reader.status().state
    ([0.0, 0.1, 0.2], 1, <CameraState.ENDED: 'ended'>)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

from actwatch.capture.frame import Frame
from actwatch.capture.handoff import DropOldestQueue
from actwatch.capture.reader import CameraState, CameraStatus
from actwatch.capture.sources import SourceSpec
from actwatch.capture.video_file import capture_frames, nominal_fps, open_video


class ReplayReader:
    """Reads a video file one frame per :meth:`feed` call; with ``loop`` it starts again at the end.

    Raises :class:`~actwatch.errors.SourceError` when the file is missing or not a readable video.
    """

    def __init__(self, camera_id: str, path: str | Path, *, max_frames: int | None = None, loop: bool = False) -> None:
        self.camera_id = camera_id
        self.source = SourceSpec.parse(str(path))
        self.frames: DropOldestQueue[Frame] = DropOldestQueue(maxsize=2)
        self._max_frames = max_frames
        self._loop = loop
        self._capture = open_video(self.source.url)
        fps = nominal_fps(self._capture)  # the file's own rate, or the module's default
        self.frame_rate: float | None = fps
        self._interval = 1.0 / fps
        self._pass: Iterator[Frame] = capture_frames(self._capture, camera_id)
        self._index = 0
        self._last_ts = 0.0
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
        frame = next(self._pass, None)
        if frame is None and self._loop and self._index > 0:
            # Time keeps increasing across loops, as in CameraReader: one interval after the last frame.
            self.loops += 1
            self._capture.release()
            self._capture = open_video(self.source.url)
            self._pass = capture_frames(self._capture, self.camera_id, start=self._last_ts + self._interval)
            frame = next(self._pass, None)
        if frame is None:
            return self._end()
        self._last_ts = frame.timestamp
        self.frames.put(dataclasses.replace(frame, index=self._index))
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
