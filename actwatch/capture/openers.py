"""Which opener reads which source: FFmpeg processes for network cameras, OpenCV for webcams and files.

Network cameras (RTSP(S), HTTP(S) MJPEG) each get an FFmpeg process of their own
(:func:`~actwatch.capture.ffmpeg.start_ffmpeg`): a hung source is killed, never waited on, and one
camera's connection attempts never wait for another's. Webcams stay on OpenCV (V4L2, local devices do
not hang on a network) and files on the one video reader's ``cv2.VideoCapture``.

Example:
    >>> import tempfile, cv2, numpy as np
    >>> clip = f"{tempfile.mkdtemp()}/clip.avi"
    >>> out = cv2.VideoWriter(clip, cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    >>> _ = out.write(np.zeros((48, 64, 3), np.uint8)); out.release()
    >>> capture = open_source(SourceSpec.parse(clip), CaptureSettings())
    >>> isinstance(capture, Interruptible), capture.read()[1].shape
    (False, (48, 64, 3))
    >>> capture.release()
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from actwatch.capture.ffmpeg import start_ffmpeg
from actwatch.capture.opencv import open_capture
from actwatch.capture.settings import CaptureSettings
from actwatch.capture.sources import SourceSpec
from actwatch.capture.video_file import Capture

Opener = Callable[[SourceSpec, CaptureSettings], Capture]
"""Opens a source or raises; the default is :func:`open_source`."""


@runtime_checkable
class Interruptible(Protocol):
    """A capture whose blocked ``read()`` another thread can end (``FfmpegCapture`` kills its process)."""

    def interrupt(self) -> None: ...


def open_source(source: SourceSpec, settings: CaptureSettings) -> Capture:
    """Open ``source`` with the opener of its kind (see the module docstring)."""
    if source.kind in ("rtsp", "http"):
        return start_ffmpeg(source, settings)
    return open_capture(source, settings)
