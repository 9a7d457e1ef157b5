"""Short MP4 clips around events: a bounded ring of recent frames per camera, written off the compute thread.

The pipeline thread feeds every processed frame to :meth:`ClipRecorder.add_frame`, which keeps at most
``clips.fps`` of them per second (shrunk to ``clips.max_width``) in a ring of ``pre_roll_s`` seconds per
camera: references and one resize, no encoding. An event (:meth:`ClipRecorder.start`) takes the ring's
frames as its pre-roll and collects ``post_roll_s`` seconds more; the finished clip goes to a writer
thread through a bounded queue and is encoded as H.264 MP4 (``ffmpeg``, yuv420p, faststart: plays in
browsers) into ``<media_dir>/clips``, atomically and mode 0600. Clips have their own retention
(:meth:`ClipStore.purge`). At most ``max_pending`` clips are collected at a time; an event beyond that
gets no clip (logged, counted), so memory stays bounded.

Example:
    >>> import tempfile, pathlib, numpy as np
    >>> from actwatch.service.media_settings import ClipSettings
    >>> store = ClipStore(pathlib.Path(tempfile.mkdtemp()), retention_days=7)
    >>> recorder = ClipRecorder(store, ClipSettings(pre_roll_s=1, post_roll_s=1, fps=4))
    >>> for i in range(4):
    ...     recorder.add_frame("door", 100.0 + i / 4, np.zeros((48, 64, 3), np.uint8))
    >>> recorder.start("ev1", "door", 100.75)
    True
    >>> for i in range(4, 9):
    ...     recorder.add_frame("door", 100.0 + i / 4, np.zeros((48, 64, 3), np.uint8))
    >>> recorder.close()  # waits for the writer
    >>> store.existing("ev1").name, recorder.written
    ('ev1.mp4', 1)
"""

from __future__ import annotations

import collections
import logging
import math
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from actwatch.fileio import atomic_path
from actwatch.service.media_settings import ClipSettings

log = logging.getLogger(__name__)

_STALE_AFTER_S = 5.0  # a clip whose camera stopped sending frames is written with what it has


@dataclass(frozen=True, slots=True, eq=False)
class ClipFrame:
    """A frame of the ring: its wall time and (possibly shrunk) BGR image."""

    time: float
    image: np.ndarray = field(repr=False)


@dataclass(frozen=True, slots=True, eq=False)
class FinishedClip:
    """A clip ready to encode: the event it belongs to and its frames, oldest first."""

    event_id: str
    frames: tuple[ClipFrame, ...]
    fps: float


@dataclass(slots=True, eq=False)
class _Collecting:
    """A clip still collecting its post-roll (owned by the pipeline thread)."""

    event_id: str
    camera_id: str
    until: float
    deadline: float  # wall clock: written as is after this, if the camera went quiet
    frames: list[ClipFrame]


class ClipStore:
    """Where clips live (``<dir>/<shard>/<event id>.mp4``) and their retention."""

    def __init__(self, clips_dir: Path, retention_days: float, *, clock: Callable[[], float] = time.time) -> None:
        self.dir = Path(clips_dir)
        self.retention_days = retention_days
        self._clock = clock

    def path(self, event_id: str) -> Path:
        return self.dir / event_id[:2] / f"{event_id}.mp4"

    def existing(self, event_id: str) -> Path | None:
        path = self.path(event_id)
        return path if path.is_file() else None

    def delete(self, event_id: str) -> None:
        self.path(event_id).unlink(missing_ok=True)

    def purge(self, now: float | None = None) -> int:
        """Delete clips written more than ``retention_days`` before ``now``; how many."""
        cutoff = (self._clock() if now is None else now) - self.retention_days * 86400.0
        deleted = 0
        for path in self.dir.glob("*/*.mp4"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    deleted += 1
            except FileNotFoundError:
                pass
        return deleted


def write_mp4(path: Path, frames: Sequence[ClipFrame], fps: float, *, crf: int = 28) -> None:
    """Encode ``frames`` as an H.264 MP4 at ``path`` (atomically, mode 0600) with ``ffmpeg``."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError("ffmpeg is not installed; clips need it (Debian: apt-get install ffmpeg)")
    h, w = frames[0].image.shape[:2]
    command = [
        ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
        "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{w}x{h}", "-r", f"{fps:g}", "-i", "pipe:0",
        "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2", "-c:v", "libx264", "-preset", "veryfast",
        "-crf", str(crf), "-pix_fmt", "yuv420p", "-movflags", "+faststart", "-an", "-f", "mp4",
    ]  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, mode=0o600) as tmp:
        process = subprocess.Popen([*command, str(tmp)], stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        assert process.stdin is not None
        try:
            for frame in frames:
                image = frame.image
                if image.shape[:2] != (h, w):  # the camera changed resolution mid-clip
                    image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
                process.stdin.write(np.ascontiguousarray(image, dtype=np.uint8).tobytes())
            process.stdin.close()
        except BrokenPipeError:
            pass
        assert process.stderr is not None
        stderr = process.stderr.read()  # -loglevel error: a few lines at most, never enough to block ffmpeg
        process.wait(timeout=120)
        if process.returncode != 0:
            raise RuntimeError(f"ffmpeg could not write the clip: {stderr.decode(errors='replace').strip()[:500]}")


ClipWriter = Callable[[Path, Sequence[ClipFrame], float], None]


class ClipRecorder:
    """Collects clips on the pipeline thread (:meth:`add_frame`, :meth:`start`) and writes them on its own.

    ``writer`` encodes one clip (default: :func:`write_mp4` with ``settings.crf``). Call :meth:`close` at
    shutdown: clips still collecting are written with the frames they have.
    """

    def __init__(self, store: ClipStore, settings: ClipSettings, *, writer: ClipWriter | None = None) -> None:
        self.store = store
        self.settings = settings
        self._writer = writer or (lambda path, frames, fps: write_mp4(path, frames, fps, crf=settings.crf))
        self._interval = 1.0 / settings.fps
        self._ring_size = max(1, math.ceil(settings.pre_roll_s * settings.fps) + 1)
        self._rings: dict[str, collections.deque[ClipFrame]] = {}
        self._collecting: list[_Collecting] = []
        self._lock = threading.Lock()  # add_frame/start run on the pipeline thread, close on the app's
        self._queue: queue.Queue[FinishedClip | None] = queue.Queue(maxsize=settings.max_pending)
        self._thread: threading.Thread | None = None
        self.written = 0
        self.skipped = 0
        self.failed = 0

    # ------------------------------------------------------------------------------ pipeline thread
    def add_frame(self, camera_id: str, frame_time: float, image: np.ndarray) -> None:
        """Offer a processed frame; kept if ``1/fps`` s passed since the camera's last kept one."""
        if not self.settings.enabled:
            return
        with self._lock:
            ring = self._rings.get(camera_id)
            if ring is None:
                ring = self._rings[camera_id] = collections.deque(maxlen=self._ring_size)
            if ring and frame_time - ring[-1].time < self._interval * 0.999:
                self._finish_due(frame_time)
                return
            kept = ClipFrame(frame_time, self._shrink(image))
            ring.append(kept)
            for clip in self._collecting:
                if clip.camera_id == camera_id:
                    clip.frames.append(kept)
            self._finish_due(frame_time)

    def start(self, event_id: str, camera_id: str, frame_time: float) -> bool:
        """Begin the clip of an event confirmed at ``frame_time``; ``False`` when none will be written."""
        if not self.settings.enabled:
            return False
        with self._lock:
            if len(self._collecting) >= self.settings.max_pending:
                self.skipped += 1
                log.warning("no clip for event %s: %d clips are being collected", event_id, len(self._collecting))
                return False
            since = frame_time - self.settings.pre_roll_s
            frames = [f for f in self._rings.get(camera_id, ()) if since <= f.time <= frame_time]
            until = frame_time + self.settings.post_roll_s
            deadline = time.monotonic() + self.settings.post_roll_s + _STALE_AFTER_S
            self._collecting.append(_Collecting(event_id, camera_id, until, deadline, frames))
            self._finish_due(frame_time)
        return True

    def forget(self, camera_id: str) -> None:
        """A removed camera: its ring goes; its clips are written with what they have."""
        with self._lock:
            self._rings.pop(camera_id, None)
            for clip in [c for c in self._collecting if c.camera_id == camera_id]:
                self._hand_over(clip)

    def _shrink(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        if w <= self.settings.max_width:
            return image  # the pipeline does not change its frames: a reference is enough
        scale = self.settings.max_width / w
        return cv2.resize(image, (self.settings.max_width, max(2, round(h * scale))), interpolation=cv2.INTER_AREA)

    def _finish_due(self, now: float) -> None:
        wall = time.monotonic()
        for clip in list(self._collecting):
            if (clip.camera_id in self._rings and self._rings[clip.camera_id] and now >= clip.until
                    and self._rings[clip.camera_id][-1].time >= clip.until) or wall > clip.deadline:  # fmt: skip
                self._hand_over(clip)

    def _hand_over(self, clip: _Collecting) -> None:
        self._collecting.remove(clip)
        if not clip.frames:
            self.skipped += 1
            return
        self._ensure_writer()
        try:
            self._queue.put_nowait(FinishedClip(clip.event_id, tuple(clip.frames), self._playback_fps(clip.frames)))
        except queue.Full:
            self.skipped += 1
            log.warning("no clip for event %s: the clip writer is behind", clip.event_id)

    def _playback_fps(self, frames: Sequence[ClipFrame]) -> float:
        """The rate the frames really came at (at most ``fps``): a camera processed slower than ``fps``
        still plays in real time."""
        span = frames[-1].time - frames[0].time
        if len(frames) < 2 or span <= 0:
            return self.settings.fps
        return min(self.settings.fps, (len(frames) - 1) / span)

    # -------------------------------------------------------------------------------- writer thread
    def _ensure_writer(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._write_loop, name="clip-writer", daemon=True)
            self._thread.start()

    def _write_loop(self) -> None:
        while (clip := self._queue.get()) is not None:
            try:
                self._writer(self.store.path(clip.event_id), clip.frames, clip.fps)
                self.written += 1
            except Exception:
                self.failed += 1
                log.exception("could not write the clip of event %s", clip.event_id)

    def close(self) -> None:
        """Write the clips still collecting, then stop the writer thread (waits for it)."""
        with self._lock:
            for clip in list(self._collecting):
                self._hand_over(clip)
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=180)
