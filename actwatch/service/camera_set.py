"""The running cameras of the compute pipeline: each camera's reader, its own tracker, its frame rate.

:class:`CameraSet` owns the camera life cycle inside the pipeline: :meth:`~CameraSet.add` creates and
starts the reader, :meth:`~CameraSet.remove` stops it and queues the camera so the compute thread frees
its per-track state, :meth:`~CameraSet.newest_frames` hands the compute step the newest frame of every
camera. A camera's tracker is created at its first frame, when the reader knows the source's frame rate
(ByteTrack's lost-track buffer is counted in frames).

Example:
    >>> import numpy as np
    >>> from actwatch.capture.frame import Frame
    >>> from actwatch.capture.handoff import DropOldestQueue
    >>> from actwatch.capture.sources import SourceSpec
    >>> from actwatch.config import CameraConfig
    >>> class Still:  # a reader that holds one frame
    ...     def __init__(self, camera_id):
    ...         self.source, self.frame_rate = SourceSpec.parse("rtsp://cam.local/1"), 10.0
    ...         self.frames = DropOldestQueue(maxsize=2)
    ...         self.frames.put(Frame(camera_id, 0, 0.0, 0.0, np.zeros((4, 4, 3), np.uint8)))
    ...     def start(self): pass
    ...     def stop(self, timeout=0.0): pass
    ...     def status(self): return None
    >>> cameras = CameraSet(lambda cfg: Still(cfg.id), lambda camera_id, fps: f"tracker of {camera_id} at {fps} fps")
    >>> cameras.add(CameraConfig(id="cam1", url="rtsp://cam.local/1"))
    >>> [(c.camera_id, c.camera.tracker) for c in cameras.newest_frames()]
    [('cam1', 'tracker of cam1 at 10.0 fps')]
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from actwatch.capture.frame import Frame
from actwatch.capture.handoff import END, DropOldestQueue
from actwatch.capture.reader import CameraStatus
from actwatch.capture.sources import SourceSpec
from actwatch.config import CameraConfig
from actwatch.errors import ActwatchError

log = logging.getLogger(__name__)

DEFAULT_FRAME_RATE = 30.0  # a source that does not say its frame rate (ByteTrack's own default)
MAX_WAIT_SHARE = 0.3  # of a camera's frame interval: the most the intake waits for its next frame


class Reader(Protocol):
    """What the pipeline needs of a camera reader (:class:`~actwatch.capture.reader.CameraReader`, or a
    replay in tests and the benchmark). ``frame_rate`` is the source's own frames per second once it is
    open, ``None`` while unknown."""

    source: SourceSpec
    frames: DropOldestQueue[Frame]

    @property
    def frame_rate(self) -> float | None: ...

    def start(self) -> None: ...
    def stop(self, timeout: float = ...) -> None: ...
    def status(self) -> CameraStatus: ...


TrackerT = TypeVar("TrackerT")
ReaderFactory = Callable[[CameraConfig], Reader]


@dataclass(slots=True, eq=False)
class RunningCamera(Generic[TrackerT]):
    """One camera in the set; its fields are used by the compute thread only, except ``config``."""

    config: CameraConfig
    reader: Reader
    tracker: TrackerT | None = None
    ended: bool = False
    processed_times: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=128))
    served: int = 0  # when a frame of this camera was last taken (the set's turn counter); 0: never

    def processed_fps(self) -> float:
        """Frames per second this camera was processed at, over its last 128 processed frames."""
        times = self.processed_times
        span = times[-1] - times[0] if len(times) >= 2 else 0.0
        return (len(times) - 1) / span if span > 0 else 0.0


@dataclass(frozen=True, slots=True, eq=False)
class CameraFrame(Generic[TrackerT]):
    """The newest frame of one camera for this step, and how many older ones were skipped for it."""

    camera: RunningCamera[TrackerT]
    frame: Frame
    skipped: int

    @property
    def camera_id(self) -> str:
        return self.camera.config.id

    @property
    def tracker(self) -> TrackerT:
        assert self.camera.tracker is not None  # created by newest_frames() before it hands a frame on
        return self.camera.tracker


class CameraSet(Generic[TrackerT]):
    """Running cameras by id; safe to change from API threads while the compute thread reads frames."""

    def __init__(self, reader_factory: ReaderFactory, tracker_factory: Callable[[str, float], TrackerT]) -> None:
        self._reader_factory = reader_factory
        self._tracker_factory = tracker_factory
        self._cameras: dict[str, RunningCamera[TrackerT]] = {}
        self._removed: collections.deque[str] = collections.deque()
        self._lock = threading.Lock()
        self._turn = 0  # counts frames taken; a camera's ``served`` is the turn its last frame was taken

    def add(self, cfg: CameraConfig) -> None:
        """Create and start ``cfg``'s reader; a bad URL raises :class:`~actwatch.errors.ActwatchError`."""
        with self._lock:
            if cfg.id in self._cameras:
                raise ActwatchError(f"camera '{cfg.id}' is already running")
        reader = self._reader_factory(cfg)
        with self._lock:
            self._cameras[cfg.id] = RunningCamera(config=cfg, reader=reader)
        reader.start()
        log.info("camera %s added (%s)", cfg.id, reader.source.masked)

    def update(self, cfg: CameraConfig) -> None:
        """Use ``cfg`` (a new name or zone) for a running camera, without reconnecting."""
        with self._lock:
            cam = self._cameras.get(cfg.id)
            if cam is not None:
                cam.config = cfg

    def remove(self, camera_id: str) -> None:
        """Stop the camera's reader; :meth:`take_removed` then returns its id once."""
        with self._lock:
            cam = self._cameras.pop(camera_id, None)
            self._removed.append(camera_id)
        if cam is not None:
            cam.reader.stop(timeout=2.0)
        log.info("camera %s removed", camera_id)

    def take_removed(self) -> list[str]:
        """Ids removed since the last call, oldest first (their per-track state is still to be freed)."""
        with self._lock:
            removed = list(self._removed)
            self._removed.clear()
        return removed

    def stop_all(self) -> None:
        for cam in self._running():
            cam.reader.stop(timeout=2.0)

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._cameras)

    def statuses(self) -> list[CameraStatus]:
        return [cam.reader.status() for cam in self._running()]

    def all_ended(self) -> bool:
        """Whether every camera's stream has ended (finite files only; live cameras never end)."""
        return all(cam.ended for cam in self._running())

    def tracker(self, camera_id: str) -> TrackerT | None:
        """The camera's tracker (``None`` before its first frame, or for an unknown camera)."""
        with self._lock:
            cam = self._cameras.get(camera_id)
        return cam.tracker if cam is not None else None

    def processed_fps(self, camera_id: str) -> float:
        with self._lock:
            cam = self._cameras.get(camera_id)
        return cam.processed_fps() if cam is not None else 0.0

    def newest_frames(self, limit: int | None = None, *, skip: Collection[str] = ()) -> list[CameraFrame[TrackerT]]:
        """The newest waiting frame of every camera that has one (older ones are skipped and counted).

        With ``limit``, of at most that many cameras: those whose frame was taken longest ago go first
        (round robin), and the others' frames stay with their readers, where newer ones replace them.
        The cameras in ``skip`` (a frame of theirs still being detected) keep theirs waiting too.
        """
        out: list[CameraFrame[TrackerT]] = []
        for cam in self._in_turn(limit, skip):
            if limit is not None and len(out) >= limit:
                break
            frames = []
            for item in cam.reader.frames.drain():
                if item is END:
                    cam.ended = True
                elif isinstance(item, Frame):
                    frames.append(item)
            if not frames:
                continue
            if cam.tracker is None:
                cam.tracker = self._tracker_factory(cam.config.id, cam.reader.frame_rate or DEFAULT_FRAME_RATE)
            self._turn += 1
            cam.served = self._turn
            out.append(CameraFrame(cam, frames[-1], skipped=len(frames) - 1))
        return out

    def wait_for_due_frames(self, limit: int | None, within_s: float, *, skip: Collection[str] = ()) -> float:
        """Wait for the next frame of each camera whose turn is next (:meth:`newest_frames` with ``limit``)
        if it is due within ``within_s`` seconds and within :data:`MAX_WAIT_SHARE` of its frame interval
        (due: its newest frame's capture time plus one interval), ``within_s`` seconds at most in all; the
        seconds waited.

        The frame the detector takes is then at most one interval minus the wait old, instead of up to a
        whole interval. The wait costs the detector about ``wait² / (2 x interval)`` idle per call (the
        frame age is uniform over the interval), which the share of the interval bounds for fast cameras:
        at 10 fps a 30 ms wait idles 4.5 ms per call, at 30 fps the wait is 10 ms at most.
        """
        if within_s <= 0:
            return 0.0
        start = time.monotonic()  # the allowance on the monotonic clock: a step of the wall clock can't stretch it
        for cam in self._in_turn(limit, skip)[:limit]:
            left = within_s - (time.monotonic() - start)
            if left <= 0:
                break
            queue, rate = cam.reader.frames, cam.reader.frame_rate
            seen = queue.put_count
            newest = queue.newest()
            if not isinstance(newest, Frame) or not rate or rate <= 0:
                continue
            if 0 < newest.wall_time + 1.0 / rate - time.time() <= min(left, MAX_WAIT_SHARE / rate):
                queue.wait_for_put(seen, left)
        return time.monotonic() - start

    def _in_turn(self, limit: int | None, skip: Collection[str] = ()) -> list[RunningCamera[TrackerT]]:
        """The running cameras but those in ``skip``; with ``limit``, those with a frame waiting, whose
        frame was taken longest ago first (round robin)."""
        running = [cam for cam in self._running() if cam.config.id not in skip]
        if limit is None:
            return running
        return sorted((cam for cam in running if len(cam.reader.frames)), key=lambda cam: cam.served)

    def _running(self) -> list[RunningCamera[TrackerT]]:
        with self._lock:
            return list(self._cameras.values())
