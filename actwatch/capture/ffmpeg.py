"""Network cameras through one FFmpeg process each, raw BGR frames read from its stdout pipe.

OpenCV's FFmpeg backend opens one source at a time per process, and a hung open or read cannot be
ended from outside: a silent camera held up every other camera's reconnect and left abandoned threads
stuck in OpenCV. Here each connection is an ``ffmpeg`` child process (as Frigate does):

* **Nothing is ever waited on without a deadline.** The open waits for FFmpeg's output header on its
  stderr for at most ``open_timeout_s``; each frame read waits at most ``stall_timeout_s``; both wait
  with ``select()`` on the pipes and kill the process when the deadline passes.
* **A hung source is killed, never abandoned.** :meth:`FfmpegCapture.interrupt` (any thread) kills the
  process; the blocked read then sees end-of-file at once, so the reader's own thread always returns.
* **Frame size from FFmpeg itself**: the output stream line of its header (``Stream #0:0: Video:
  rawvideo ..., 384x288, ..., 10 fps``), printed once the first frame is decoded, so there is one
  connection per attempt (no separate ffprobe round-trip).
* **No repeated frames**: ``-fps_mode passthrough`` makes FFmpeg pass each decoded frame once, never
  duplicate one to fill a gap, so every frame out of the pipe is a new frame of the stream.
* **No secret in errors**: FFmpeg quotes the URL (password included) in its messages; the stderr tail
  that reaches an error is masked with :meth:`~actwatch.capture.sources.SourceSpec.redact`.

``capture:`` settings map onto FFmpeg input options: ``rtsp_transport`` -> ``-rtsp_transport``,
``open_timeout_s`` -> the socket I/O ``-timeout`` (RTSP) / ``-rw_timeout`` (HTTP) in microseconds,
``ffmpeg_options`` -> ``-key value`` before ``-i``; and ``max_fps`` onto a ``select`` filter that passes
the first frame of each 1/max_fps of stream time (:func:`max_fps_filter`; wall-clock timestamps for
MJPEG, which has none), the rate then reported being the lower of the camera's and the cap.

Example:
    >>> rtsp = SourceSpec.parse("rtsp://admin:pw@10.0.0.5/live")
    >>> settings = CaptureSettings(rtsp_transport="udp", ffmpeg_options={"analyzeduration": "500000"})
    >>> args = ffmpeg_command(rtsp, settings)
    >>> [args[args.index(option) + 1] for option in ("-rtsp_transport", "-timeout", "-analyzeduration")]
    ['udp', '10000000', '500000']
    >>> args[-7:]
    ['-fps_mode', 'passthrough', '-f', 'rawvideo', '-pix_fmt', 'bgr24', 'pipe:1']
    >>> ffmpeg_command(rtsp, CaptureSettings(max_fps=10))[-9] == "-vf"
    True
    >>> header = "Output #0, rawvideo, to 'pipe:1':\\n  Stream #0:0: Video: rawvideo (BGR[24] / 0x18524742), "
    >>> parse_output_header(header + "bgr24(pc), 384x288, q=2-31, 10 fps, 10 tbn\\n")
    StreamFormat(width=384, height=288, fps=10.0)
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import select
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from actwatch.capture.settings import CaptureSettings
from actwatch.capture.sources import SourceSpec
from actwatch.errors import SourceError

log = logging.getLogger(__name__)

STDERR_TAIL_CHARS = 2000  # what is kept of FFmpeg's messages for error text
_CAP_PROP_POS_MSEC = 0  # cv2's property ids, literal so this module needs no cv2
_CAP_PROP_FPS = 5
_OUTPUT_SIZE = re.compile(r", (\d{1,5})x(\d{1,5})[ ,\[]")
_OUTPUT_FPS = re.compile(r", ([0-9]+(?:\.[0-9]+)?) (?:fps|tbr)\b")


class FfmpegError(RuntimeError):
    """FFmpeg could not open or read a source (the message is masked)."""


@dataclass(frozen=True, slots=True)
class StreamFormat:
    """The frames FFmpeg writes to its pipe: ``width`` x ``height`` BGR, ``fps`` when it says (else 0)."""

    width: int
    height: int
    fps: float

    @property
    def frame_bytes(self) -> int:
        return self.width * self.height * 3


def ffmpeg_binary() -> str:
    """The ``ffmpeg`` on PATH; :class:`SourceError` saying what to install when there is none."""
    path = shutil.which("ffmpeg")
    if path is None:
        raise SourceError("ffmpeg not found on PATH: network cameras need it (apt-get install ffmpeg)")
    return path


def ffmpeg_command(source: SourceSpec, settings: CaptureSettings, binary: str = "ffmpeg") -> list[str]:
    """The FFmpeg command line that decodes ``source``'s first video stream to raw BGR on stdout."""
    io_timeout_us = str(int(settings.open_timeout_s * 1_000_000))
    args = [binary, "-nostdin", "-hide_banner", "-nostats", "-loglevel", "info"]
    if source.kind == "rtsp":
        args += ["-rtsp_transport", settings.rtsp_transport, "-timeout", io_timeout_us]
    elif source.kind == "http":
        args += ["-rw_timeout", io_timeout_us]
    for key, value in settings.ffmpeg_options.items():
        args += [f"-{key}", value]
    args += hwaccel_args(settings.hwaccel)
    if settings.max_fps is not None and source.kind == "http":
        # MJPEG carries no timestamps: FFmpeg counts frames at a guessed rate; the cap needs real time
        args += ["-use_wallclock_as_timestamps", "1"]
    args += ["-i", source.url, "-an", "-sn", "-dn", "-map", "0:v:0"]
    if settings.max_fps is not None:
        args += ["-vf", max_fps_filter(settings.max_fps)]
    args += ["-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "bgr24", "pipe:1"]
    return args


def max_fps_filter(max_fps: float) -> str:
    """FFmpeg's filter that passes at most ``max_fps`` frames a second: the first frame of each 1/max_fps
    slot of stream time. Unlike the ``fps`` filter it never repeats a frame, so a camera slower than the
    cap (or slower at night than it says) keeps its own rate; a frame in another slot than the last one
    passed goes through, so timestamps that jump back (a camera restarting them) hold nothing up.

    Example:
        >>> max_fps_filter(10)
        "select='isnan(prev_selected_t)+not(eq(floor(t*10),floor(prev_selected_t*10)))'"
    """
    return f"select='isnan(prev_selected_t)+not(eq(floor(t*{max_fps:g}),floor(prev_selected_t*{max_fps:g})))'"


def _nvidia_driver_found() -> bool:
    from actwatch.onnx_providers import cuda_devices

    return cuda_devices()[0] > 0


def hwaccel_args(mode: str, driver_found: Callable[[], bool] = _nvidia_driver_found) -> list[str]:
    """FFmpeg's input options for hardware decoding ``mode`` (``none``, ``cuda``, ``auto``).

    FFmpeg does not fall back by itself when ``-hwaccel cuda`` finds no device (it fails the stream),
    so ``cuda`` is asked for only where the NVIDIA driver reports a device; elsewhere the CPU decodes.
    Frames come back to system memory as BGR either way (no ``-hwaccel_output_format``).

    Example:
        >>> hwaccel_args("cuda", driver_found=lambda: False), hwaccel_args("cuda", driver_found=lambda: True)
        ([], ['-hwaccel', 'cuda'])
    """
    if mode == "auto":
        return ["-hwaccel", "auto"]
    if mode == "cuda":
        if driver_found():
            return ["-hwaccel", "cuda"]
        log.warning("capture.hwaccel cuda: no NVIDIA device found; decoding on the CPU")
    return []


def parse_output_header(text: str) -> StreamFormat | None:
    """The frame format from FFmpeg's ``Output #0`` header in ``text``; ``None`` until its stream line is
    complete (ends with a newline)."""
    start = text.find("Output #0")
    if start < 0:
        return None
    complete = text[start : text.rfind("\n") + 1]  # a line still being written may lack its fps
    for line in complete.splitlines():
        if "Stream #0:0" in line and "Video:" in line:
            size = _OUTPUT_SIZE.search(line)
            if size is None:
                return None
            fps = _OUTPUT_FPS.search(line)
            rate = float(fps.group(1)) if fps else 0.0
            return StreamFormat(int(size.group(1)), int(size.group(2)), rate if math.isfinite(rate) else 0.0)
    return None


class FfmpegCapture:
    """One FFmpeg process decoding one source; a :class:`~actwatch.capture.video_file.Capture`.

    Build it with :func:`start_ffmpeg`. :meth:`read` is called from one thread (the reader's session);
    :meth:`interrupt` from any thread; :meth:`release` once, by the reading thread.
    """

    def __init__(self, source: SourceSpec, settings: CaptureSettings, process: subprocess.Popen[bytes]) -> None:
        self.source = source
        self.settings = settings
        self._process = process
        self._kill_lock = threading.Lock()
        self._stderr_text = ""
        self._format: StreamFormat | None = None
        self._frames = 0
        assert process.stdout is not None and process.stderr is not None
        self._out = process.stdout.fileno()
        self._err = process.stderr.fileno()
        os.set_blocking(self._err, False)

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def format(self) -> StreamFormat | None:
        """The frame format, once the header was read."""
        return self._format

    def wait_header(self) -> StreamFormat:
        """Wait (at most ``open_timeout_s``) for FFmpeg's output header; kill and raise on failure."""
        deadline = time.monotonic() + self.settings.open_timeout_s
        while self._format is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.interrupt()
                raise FfmpegError(
                    f"could not open {self.source.kind} source {self.source.masked}: "
                    f"no video within {self.settings.open_timeout_s:.1f}s{self._reason()}"
                )
            ready, _, _ = select.select([self._err], [], [], remaining)
            if ready and not self._drain_stderr():
                self.interrupt()
                raise FfmpegError(f"could not open {self.source.kind} source {self.source.masked}{self._reason()}")
            self._format = parse_output_header(self._stderr_text)
        return self._format

    def read(self) -> tuple[bool, np.ndarray | None]:
        """The next frame; raises :class:`FfmpegError` when the stream ends, stalls or was interrupted."""
        fmt = self._format if self._format is not None else self.wait_header()
        buffer = bytearray(fmt.frame_bytes)
        view = memoryview(buffer)
        got = 0
        deadline = time.monotonic() + self.settings.stall_timeout_s
        while got < len(buffer):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.interrupt()
                raise FfmpegError(
                    f"stalled: no frame from {self.source.masked} for {self.settings.stall_timeout_s:.1f}s"
                )
            ready, _, _ = select.select([self._out, self._err], [], [], remaining)
            if self._err in ready:
                self._drain_stderr()
            if self._out in ready:
                count = os.readv(self._out, [view[got:]])
                if count == 0:
                    self._final_words()
                    raise FfmpegError(f"stream ended or lost: {self.source.masked}{self._reason()}")
                got += count
        self._frames += 1
        return True, np.frombuffer(buffer, np.uint8).reshape(fmt.height, fmt.width, 3)

    def get(self, prop_id: int) -> float:
        """``CAP_PROP_FPS``: the stream's rate (0 if unknown); ``CAP_PROP_POS_MSEC``: the position of the
        last frame by frame count (FFmpeg passes every decoded frame once, so it advances per read)."""
        fps = self._format.fps if self._format is not None else 0.0
        if self.settings.max_fps is not None:  # the header keeps the camera's rate; the filter caps it
            fps = min(fps, self.settings.max_fps) if fps > 0 else self.settings.max_fps
        if prop_id == _CAP_PROP_FPS:
            return fps
        if prop_id == _CAP_PROP_POS_MSEC:
            return self._frames * 1000.0 / (fps or 1.0)
        return 0.0

    def interrupt(self) -> None:
        """Kill the process now (safe from any thread, any number of times): a blocked read returns."""
        with self._kill_lock:
            if self._process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    self._process.kill()

    def release(self) -> None:
        """Kill and reap the process and close its pipes."""
        self.interrupt()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=5)
        for pipe in (self._process.stdout, self._process.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()

    def _final_words(self) -> None:
        """After end-of-file: let FFmpeg exit (a moment at most) and read the rest of its messages."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=1.0)
        self.interrupt()
        while select.select([self._err], [], [], 0)[0] and self._drain_stderr():
            pass

    def _drain_stderr(self) -> bool:
        """Read what FFmpeg printed (keeping a bounded tail); False at end-of-file."""
        try:
            chunk = os.read(self._err, 65536)
        except BlockingIOError:
            return True
        except OSError:
            return False
        if not chunk:
            return False
        text = self._stderr_text + chunk.decode(errors="replace")
        # Keep the header until it is parsed, then only a tail for error messages.
        limit = STDERR_TAIL_CHARS if self._format is not None else 64 * STDERR_TAIL_CHARS
        self._stderr_text = text[-limit:]
        return True

    def _reason(self) -> str:
        """The last FFmpeg error line (masked), as ``": <line>"``, or nothing."""
        lines = [line.strip() for line in self._stderr_text.splitlines() if line.strip()]
        useful = [
            line for line in lines if not line.startswith(("Input #", "Output #", "Stream", "Metadata", "Duration"))
        ]
        if not useful:
            return ""
        # FFmpeg prefixes errors with the URL, which the message already names (masked).
        return f": {self.source.redact(useful[-1].removeprefix(f'{self.source.url}: '))}"


def start_ffmpeg(source: SourceSpec, settings: CaptureSettings) -> FfmpegCapture:
    """Start FFmpeg on ``source`` and return at once; the first :meth:`FfmpegCapture.read` waits for
    the stream (``open_timeout_s`` at most), so the process can be interrupted from the first moment."""
    process = subprocess.Popen(
        ffmpeg_command(source, settings, ffmpeg_binary()),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    return FfmpegCapture(source, settings, process)
