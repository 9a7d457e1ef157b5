"""Opening sources with OpenCV (webcams and files; network cameras use :mod:`actwatch.capture.ffmpeg`).

``open_capture`` can open every kind of source, so ``scripts/faults.sh --opener opencv`` can compare
the network path with OpenCV's FFmpeg backend.

FFmpeg demuxer options such as ``rtsp_transport`` can only be given to OpenCV through the
``OPENCV_FFMPEG_CAPTURE_OPTIONS`` environment variable, which is process-wide and read when a capture
is opened. :class:`FfmpegOptionsEnv` sets it right before each open and keeps readers that need a
*different* value from opening at the same time. (OpenCV's FFmpeg backend still opens one source at a
time per process, whatever the options: why network cameras do not use it.) The one module-level
instance mirrors the one process-wide variable it guards.

Example:
    >>> rtsp = SourceSpec.parse("rtsp://127.0.0.1:8554/cam1")
    >>> ffmpeg_options_for(rtsp, CaptureSettings()), ffmpeg_options_for(rtsp, CaptureSettings(rtsp_transport="udp"))
    ('rtsp_transport;tcp', 'rtsp_transport;udp')
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

import cv2

from actwatch.capture.settings import CaptureSettings
from actwatch.capture.sources import SourceSpec

ENV_VAR = "OPENCV_FFMPEG_CAPTURE_OPTIONS"


class CaptureOpenError(RuntimeError):
    """OpenCV could not open a source (its message names the source masked)."""


class FfmpegOptionsEnv:
    """Serialises opens that need different values of ``OPENCV_FFMPEG_CAPTURE_OPTIONS``.

    Example:
        >>> env = FfmpegOptionsEnv()
        >>> with env.use("rtsp_transport;tcp"):
        ...     os.environ[ENV_VAR]
        'rtsp_transport;tcp'
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._value: str | None = None
        self._users = 0
        self._saved: str | None = None

    @contextlib.contextmanager
    def use(self, value: str | None) -> Iterator[None]:
        """Hold the variable at ``value`` (``None``: unset) for the duration of an open."""
        with self._cond:
            self._cond.wait_for(lambda: self._users == 0 or self._value == value)
            if self._users == 0:
                self._saved = os.environ.get(ENV_VAR)
                self._set(value)
                self._value = value
            self._users += 1
        try:
            yield
        finally:
            with self._cond:
                self._users -= 1
                if self._users == 0:
                    self._set(self._saved)  # leave the process as we found it
                    self._cond.notify_all()

    @staticmethod
    def _set(value: str | None) -> None:
        if value is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = value


_FFMPEG_ENV = FfmpegOptionsEnv()


def ffmpeg_options_for(source: SourceSpec, settings: CaptureSettings) -> str | None:
    """The ``OPENCV_FFMPEG_CAPTURE_OPTIONS`` value for ``source`` (``key;value|key;value``).

    ``None`` means the source needs no options and opens under whatever value is set: FFmpeg leaves
    options a demuxer does not know unused, so an RTSP reader's ``rtsp_transport`` cannot hurt a file.
    """
    if source.kind not in ("rtsp", "http"):
        return None
    options: dict[str, str] = {}
    if source.kind == "rtsp":
        options["rtsp_transport"] = settings.rtsp_transport
    options.update(settings.ffmpeg_options)
    return "|".join(f"{k};{v}" for k, v in options.items()) or None


def open_capture(source: SourceSpec, settings: CaptureSettings) -> cv2.VideoCapture:
    """Open ``source`` with OpenCV; raises :class:`CaptureOpenError` (message masked) on failure."""
    # OpenCV's own log goes to stderr unformatted and unmasked (an address may hold a password), several
    # lines per failed try of an absent webcam; the reader reports every failure itself, masked, once.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    if source.kind == "webcam":
        index = source.webcam_index
        capture = cv2.VideoCapture(index) if index is not None else cv2.VideoCapture(source.url, cv2.CAP_V4L2)
    else:
        params: list[int] = []
        if source.is_live:
            # FFmpeg's interrupt callback turns a hung connect/read into a failed call.
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                int(settings.open_timeout_s * 1000),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                int(settings.stall_timeout_s * 1000),
            ]
        options = ffmpeg_options_for(source, settings)
        # Sources without options of their own (files) ignore whatever is set, so they never wait.
        guard = _FFMPEG_ENV.use(options) if options is not None else contextlib.nullcontext()
        with guard:
            capture = cv2.VideoCapture(source.url, cv2.CAP_FFMPEG, params)
    if not capture.isOpened():
        capture.release()
        hint = (
            "; is the device there (ls /dev/video*) and not in use by another program?"
            if source.kind == "webcam"
            else ""
        )
        raise CaptureOpenError(f"could not open {source.kind} source {source.masked}{hint}")
    return capture
