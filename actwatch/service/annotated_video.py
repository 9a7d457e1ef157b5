"""The annotated video of an upload job: each frame with its track boxes, ids and labels, as H.264 MP4.

:func:`draw_overlay` draws one :class:`~actwatch.service.events.FrameOverlay` (what the pipeline sends
the live dashboard) on its frame; :class:`H264Writer` pipes the frames to one ``ffmpeg`` process
(libx264, yuv420p, ``+faststart``: plays in every browser, also before it is fully downloaded) and
moves the file into place only when it is complete (:func:`~actwatch.fileio.atomic_path`).

Example:
    >>> import tempfile, pathlib, numpy as np
    >>> from actwatch.service.events import FrameOverlay, TrackOverlay
    >>> image = np.zeros((48, 64, 3), np.uint8)
    >>> drawn = draw_overlay(image, FrameOverlay("up", 0.0, (TrackOverlay(3, (4, 4, 30, 40), 0.9, "walking", 0.8),)))
    >>> bool(drawn.any()), bool(image.any())  # drawn on a copy
    (True, False)
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "annotated.mp4"
    >>> with H264Writer(out, fps=10.0, width=64, height=48) as writer:
    ...     for _ in range(3):
    ...         writer.write(drawn)
    >>> out.read_bytes()[4:8]
    b'ftyp'
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from pathlib import Path
from types import TracebackType

import cv2
import numpy as np

from actwatch.errors import ActwatchError
from actwatch.fileio import atomic_path
from actwatch.service.events import FrameOverlay

# Distinct, readable colours (BGR) picked by track id.
_PALETTE = ((0, 0, 255), (0, 160, 0), (255, 96, 0), (0, 140, 255), (200, 0, 200), (160, 120, 0), (0, 90, 180))


def draw_overlay(image: np.ndarray, overlay: FrameOverlay | None) -> np.ndarray:
    """A copy of ``image`` (BGR) with each track's box and ``#id label score`` caption drawn."""
    out: np.ndarray = np.ascontiguousarray(image, dtype=np.uint8).copy()
    if overlay is None:
        return out
    height, width = out.shape[:2]
    thickness = max(1, round(max(height, width) / 400))
    font_scale = max(0.4, max(height, width) / 1600)
    for track in overlay.tracks:
        color = _PALETTE[track.track_id % len(_PALETTE)]
        x1, y1, x2, y2 = (round(v) for v in track.bbox)
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thickness)
        caption = f"#{track.track_id}" if track.label is None else f"#{track.track_id} {track.label}"
        if track.label is not None and track.score is not None:
            caption += f" {track.score:.2f}"
        (tw, th), base = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        ty = y1 - 3 if y1 - th - base - 3 >= 0 else min(height - 1, y2 + th + base + 3)
        cv2.rectangle(out, (x1, ty - th - base), (x1 + tw + 4, ty + 2), color, cv2.FILLED)
        cv2.putText(out, caption, (x1 + 2, ty - base // 2), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255), 1)
    return out


class H264Writer:
    """Writes BGR frames of one size to an H.264 MP4 at ``path`` through an ``ffmpeg`` process.

    Use as a context manager: on a clean exit the file is finished and moved to ``path``; on an
    exception, or when ffmpeg fails (:class:`~actwatch.errors.ActwatchError`), nothing is left there.
    """

    def __init__(self, path: Path, *, fps: float, width: int, height: int, preset: str = "veryfast") -> None:
        if shutil.which("ffmpeg") is None:
            raise ActwatchError("ffmpeg is not installed; install it (Debian: apt-get install ffmpeg)")
        self.path = Path(path)
        self.size = (width, height)
        self._fps = fps
        self._preset = preset
        self._atomic: contextlib.AbstractContextManager[Path] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> H264Writer:
        self._atomic = atomic_path(self.path, mode=0o600)
        tmp = self._atomic.__enter__()
        width, height = self.size
        command = [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
            "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}", "-r", f"{self._fps:.6g}", "-i", "pipe:0",
            # yuv420p needs even sides; one padding column/row at most
            "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2",
            "-c:v", "libx264", "-preset", self._preset, "-pix_fmt", "yuv420p", "-movflags", "+faststart",
            "-an", "-f", "mp4", str(tmp),
        ]  # fmt: skip
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        return self

    def write(self, image: np.ndarray) -> None:
        """Append one frame (``height x width x 3`` uint8 BGR)."""
        assert self._process is not None and self._process.stdin is not None, "use H264Writer as a context manager"
        if (image.shape[1], image.shape[0]) != self.size:
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        try:
            self._process.stdin.write(np.ascontiguousarray(image, dtype=np.uint8).tobytes())
        except BrokenPipeError:
            raise ActwatchError(f"ffmpeg stopped while writing {self.path.name}: {self._stderr()}") from None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._process is not None and self._atomic is not None
        process, atomic = self._process, self._atomic
        with contextlib.suppress(BrokenPipeError):
            assert process.stdin is not None
            process.stdin.close()
        if exc_type is not None:
            process.kill()
            process.wait()
            atomic.__exit__(exc_type, exc, tb)
            return
        code = process.wait()
        if code != 0:
            error = ActwatchError(f"ffmpeg could not write {self.path.name} (exit {code}): {self._stderr()}")
            atomic.__exit__(type(error), error, None)
            raise error
        atomic.__exit__(None, None, None)

    def _stderr(self) -> str:
        assert self._process is not None and self._process.stderr is not None
        return self._process.stderr.read().decode(errors="replace").strip()[-500:]
