"""The one way to read a finite video: a video file or a folder of frame images, as :class:`Frame`\\ s.

The service's file cameras (:class:`~actwatch.capture.reader.CameraReader`), lock-step replays
(:class:`~actwatch.capture.replay.ReplayReader`), offline tracking (``actwatch predict``) and
training-data extraction all read through :func:`capture_frames`, so a clip gets the same frames and
the same timestamps everywhere.

**Timestamp rule.** A frame's timestamp is ``start`` plus its container timestamp
(``CAP_PROP_POS_MSEC``). Where the container has none that is usable (not finite, negative, or not
after the previous frame's) the frame comes one nominal interval after the previous one (the first
frame: at ``start``). The nominal rate is the one the file reports, or :data:`DEFAULT_FPS` when it
reports none. A folder of frame images has no timestamps: frame ``i`` is at ``start + i / fps``.

Example:
    >>> import tempfile, cv2, numpy as np
    >>> clip = Path(tempfile.mkdtemp()) / "clip.avi"
    >>> out = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 20.0, (32, 24))
    >>> for i in range(5):
    ...     _ = out.write(np.full((24, 32, 3), i * 40, np.uint8))
    >>> out.release()
    >>> video_fps(clip)
    20.0
    >>> [(f.index, round(f.timestamp, 3), f.shape) for f in read_video(clip, max_frames=3)]
    [(0, 0.0, (24, 32)), (1, 0.05, (24, 32)), (2, 0.1, (24, 32))]
    >>> folder = clip.parent / "frames"; folder.mkdir()
    >>> for i in (1, 2, 10):
    ...     _ = cv2.imwrite(str(folder / f"frame_{i}.png"), np.zeros((8, 8, 3), np.uint8))
    >>> [round(f.timestamp, 2) for f in read_video(folder, fps=4.0)]
    [0.0, 0.25, 0.5]
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from actwatch.capture.frame import Frame
from actwatch.errors import SourceError

log = logging.getLogger(__name__)

DEFAULT_FPS = 25.0
"""The frame rate assumed for a video that reports none, and for a frame folder given no rate."""

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp"})
"""Files of a frame folder that are frames."""

_CAP_PROP_POS_MSEC = 0  # cv2.CAP_PROP_POS_MSEC / CAP_PROP_FPS / CAP_PROP_FRAME_COUNT, literal so fakes need no cv2
_CAP_PROP_FPS = 5
_CAP_PROP_FRAME_COUNT = 7


class Capture(Protocol):
    """What reading needs from an opened source (``cv2.VideoCapture`` satisfies it)."""

    def read(self) -> tuple[bool, np.ndarray | None]: ...

    def release(self) -> None: ...

    def get(self, prop_id: int) -> float: ...


def nominal_fps(capture: Capture) -> float:
    """The frame rate ``capture`` reports, or :data:`DEFAULT_FPS` when it reports no usable one."""
    fps = float(capture.get(_CAP_PROP_FPS))
    return fps if math.isfinite(fps) and 0.5 <= fps <= 1000 else DEFAULT_FPS


def capture_frames(capture: Capture, camera_id: str, *, start: float = 0.0) -> Iterator[Frame]:
    """The frames of an open ``capture`` until it ends, timestamped by the rule of this module.

    Indices count from 0; ``wall_time`` is the time each frame was decoded. The capture is not released.
    """
    interval = 1.0 / nominal_fps(capture)
    prev: float | None = None
    index = 0
    while True:
        ok, image = capture.read()
        if not ok or image is None:
            return
        pos = capture.get(_CAP_PROP_POS_MSEC) / 1000.0
        if not math.isfinite(pos) or pos < 0 or (prev is not None and pos <= prev):
            pos = prev + interval if prev is not None else 0.0
        prev = pos
        yield Frame(camera_id, index, start + pos, time.time(), image)
        index += 1


def frame_image_files(folder: Path) -> list[Path]:
    """The image files of a frame folder in natural order (frame_2 before frame_10)."""

    def key(p: Path) -> tuple[object, ...]:
        return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name))

    return sorted((p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS), key=key)


def open_video(path: Path | str) -> cv2.VideoCapture:
    """Open the video file ``path``; :class:`SourceError` when it is missing or not a readable video."""
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"video not found: {path}")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise SourceError(f"cannot open video {path}: not a video OpenCV/FFmpeg can read")
    return capture


def video_fps(path: Path | str, *, fps: float | None = None) -> float:
    """The nominal frame rate of ``path``: the file's own (see :func:`nominal_fps`), or for a frame
    folder ``fps`` (default :data:`DEFAULT_FPS`)."""
    if Path(path).is_dir():
        return fps if fps is not None else DEFAULT_FPS
    capture = open_video(path)
    try:
        return nominal_fps(capture)
    finally:
        capture.release()


@dataclass(frozen=True, slots=True)
class VideoProbe:
    """What :func:`probe_video` found out about a video file without reading it all."""

    frames: int
    fps: float
    width: int
    height: int

    @property
    def duration_s(self) -> float:
        """Seconds of video: frames at the nominal rate."""
        return self.frames / self.fps


def probe_video(path: Path | str, *, max_frames: int | None = None) -> VideoProbe:
    """Frame count, rate and size of the video file ``path``; its first frame must decode.

    The frame count is the container's; where it has none (some streamable formats) the frames are
    counted by decoding, stopping after ``max_frames`` (enough to know a video is over a limit).
    Raises :class:`SourceError` when the file is missing, not a video, or has no decodable frame.

    Example:
        >>> import tempfile, cv2, numpy as np
        >>> clip = Path(tempfile.mkdtemp()) / "clip.avi"
        >>> out = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (32, 24))
        >>> for _ in range(15):
        ...     _ = out.write(np.zeros((24, 32, 3), np.uint8))
        >>> out.release()
        >>> probe = probe_video(clip)
        >>> probe, probe.duration_s
        (VideoProbe(frames=15, fps=10.0, width=32, height=24), 1.5)
    """
    capture = open_video(path)
    try:
        fps = nominal_fps(capture)
        ok, first = capture.read()
        if not ok or first is None:
            raise SourceError(f"cannot read video {path}: no frame could be decoded")
        height, width = first.shape[:2]
        count = _container_frame_count(capture)
        if count is not None:
            return VideoProbe(count, fps, width, height)
        frames = 1
        while (max_frames is None or frames < max_frames) and capture.grab():
            frames += 1
        return VideoProbe(frames, fps, width, height)
    finally:
        capture.release()


def video_frame_count(path: Path | str) -> int | None:
    """The number of frames ``path`` says it holds (a frame folder: its images), for progress bars;
    None when the container does not say. An estimate: some containers count approximately.

    Example:
        >>> import tempfile
        >>> video_frame_count(tempfile.mkdtemp())
        0
    """
    if Path(path).is_dir():
        return len(frame_image_files(Path(path)))
    capture = open_video(path)
    try:
        return _container_frame_count(capture)
    finally:
        capture.release()


def _container_frame_count(capture: cv2.VideoCapture) -> int | None:
    """The frame count the container states; None where it states none (or nonsense)."""
    count = capture.get(_CAP_PROP_FRAME_COUNT)
    return int(count) if math.isfinite(count) and 0 < count < 1e9 else None


def read_video(
    path: Path | str,
    *,
    camera_id: str | None = None,
    max_frames: int | None = None,
    start: float = 0.0,
    fps: float | None = None,
) -> Iterator[Frame]:
    """The frames of a video file or frame folder ``path`` (at most ``max_frames``), from ``start`` s.

    ``camera_id`` defaults to the file or folder name. ``fps`` is the rate of a frame folder (default
    :data:`DEFAULT_FPS`); a video file's timestamps come from the file. Unreadable images of a folder
    are skipped with a warning. Raises :class:`SourceError` when the video is missing or unreadable or
    yields no frame.
    """
    path = Path(path)
    name = camera_id if camera_id is not None else path.name
    frames = _folder_frames(path, name, start, fps or DEFAULT_FPS) if path.is_dir() else _file_frames(path, name, start)
    count = 0
    try:
        while max_frames is None or count < max_frames:
            frame = next(frames, None)
            if frame is None:
                break
            yield frame
            count += 1
    finally:
        frames.close()
    if count == 0 and max_frames != 0:
        raise SourceError(f"cannot read video {path}: no frame could be decoded")


def _file_frames(path: Path, camera_id: str, start: float) -> Generator[Frame, None, None]:
    capture = open_video(path)
    try:
        yield from capture_frames(capture, camera_id, start=start)
    finally:
        capture.release()


def _folder_frames(folder: Path, camera_id: str, start: float, fps: float) -> Generator[Frame, None, None]:
    index = 0
    for path in frame_image_files(folder):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            log.warning("skipping unreadable frame %s", path)
            continue
        yield Frame(camera_id, index, start + index / fps, time.time(), image)
        index += 1


def write_video(path: Path, frames: np.ndarray | Sequence[np.ndarray], fps: float = 10.0) -> Path:
    """Write BGR frames as a video (``.avi``: MJPG, else ``mp4v``); returns ``path``.

    Example:
        >>> import tempfile
        >>> clip = write_video(Path(tempfile.mkdtemp()) / "clip.avi", [np.zeros((24, 32, 3), np.uint8)] * 5)
        >>> probe_video(clip).frames
        5
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    fourcc = cv2.VideoWriter.fourcc(*("MJPG" if path.suffix.lower() == ".avi" else "mp4v"))
    out = cv2.VideoWriter(str(path), fourcc, fps, (w, h))
    if not out.isOpened():
        raise OSError(f"OpenCV cannot write {path}")
    try:
        for frame in frames:
            out.write(np.ascontiguousarray(frame))
    finally:
        out.release()
    return path
