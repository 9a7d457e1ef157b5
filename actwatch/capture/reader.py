"""One camera reader per source: a thread that keeps the newest decoded frame ready for the tracker.

:class:`CameraReader` opens a :class:`~actwatch.capture.sources.SourceSpec` with
:func:`~actwatch.capture.openers.open_source` (an FFmpeg process per network camera, OpenCV for
webcams and files), reads frames and puts them on ``reader.frames``, a
:class:`~actwatch.capture.handoff.DropOldestQueue` of at most 1–2 frames, so the compute stage
always gets the newest frame and a slow consumer never makes the camera wait (drops are counted).

Failure handling, all inside the reader (nothing is raised out of its threads):

* **Stall watchdog on fresh frames** — the blocking open/read runs in a per-connection *session*
  thread; the reader's supervisor thread watches it and, when no *fresh* frame came for
  ``stall_timeout_s`` (or the first frame takes longer than ``open_timeout_s + stall_timeout_s``),
  ends the session and reconnects. A frame is fresh when its stream position advanced or its pixels
  changed: a capture that keeps returning its last frame during an outage (OpenCV does, every few
  seconds) does not keep a camera ``streaming``; repeated frames are not delivered either.
* **Bounded threads** — a supervisor and one session thread per camera. An
  :class:`~actwatch.capture.openers.Interruptible` capture (the FFmpeg process of a network camera) is
  interrupted (killed) when its session ends, and the next session starts only once the old one has
  returned. Other captures (OpenCV webcams, test fakes) release themselves when their blocked call
  returns: ``release()`` from another thread while ``read()`` runs is a use-after-free in OpenCV's
  FFmpeg backend, so it is never done; such a session is abandoned and releases its capture itself.
* **Reconnect** — exponential backoff with jitter; state ``reconnecting`` with a masked ``last_error``;
  the backoff resets once a connection has delivered frames. ``max_attempts`` consecutive failures
  end in ``failed``.
* **Files** — read by :func:`~actwatch.capture.video_file.capture_frames` (the one timestamp rule of
  every video reader), kept increasing across loops; paced at the file's own rate when ``realtime``;
  at the end either loop or put ``END`` (state ``ended``).

``settings`` (:class:`~actwatch.capture.settings.CaptureSettings`, the ``capture:`` section) is shared
by every camera; ``loop`` and ``realtime`` are the camera's own.

Example (a three-frame clip read as fast as it decodes; the queue keeps the newest frame and ``END``):
    >>> import tempfile, cv2, numpy as np
    >>> clip = f"{tempfile.mkdtemp()}/clip.avi"
    >>> out = cv2.VideoWriter(clip, cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    >>> for _ in range(3):
    ...     _ = out.write(np.zeros((48, 64, 3), np.uint8))
    >>> out.release()
    >>> reader = CameraReader("cam1", SourceSpec.parse(clip), CaptureSettings(), realtime=False)
    >>> reader.start()
    >>> reader.join(timeout=10)
    >>> reader.status().state, reader.status().frames_read
    (<CameraState.ENDED: 'ended'>, 3)
    >>> last, end = reader.frames.drain()
    >>> last.camera_id, last.index, round(last.timestamp, 3), last.shape, end
    ('cam1', 2, 0.2, (48, 64), END)
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from actwatch.capture.frame import Frame
from actwatch.capture.handoff import DropOldestQueue
from actwatch.capture.openers import Interruptible, Opener, open_source
from actwatch.capture.settings import CaptureSettings
from actwatch.capture.sources import SourceSpec
from actwatch.capture.video_file import Capture, capture_frames, nominal_fps

logger = logging.getLogger(__name__)

FPS_WINDOW_S = 5.0  # the "recent" in CameraStatus.fps
SESSION_EXIT_S = 5.0  # how long an interrupted session may take to return (a killed process: at once)
_CAP_PROP_POS_MSEC = 0  # cv2.CAP_PROP_POS_MSEC, literal so fakes need no cv2


class CameraState(StrEnum):
    """Where a :class:`CameraReader` is in its life cycle."""

    CONNECTING = "connecting"
    STREAMING = "streaming"
    RECONNECTING = "reconnecting"
    FAILED = "failed"
    ENDED = "ended"
    STOPPED = "stopped"


TERMINAL_STATES = frozenset({CameraState.FAILED, CameraState.ENDED, CameraState.STOPPED})


@dataclass(frozen=True, slots=True)
class CameraStatus:
    """A snapshot of one reader, safe to show (``url`` and ``last_error`` are masked).

    Example:
        >>> CameraStatus("cam1", "rtsp://u:***@h/x", CameraState.STREAMING, None, 10, 2, 9.8, 0, None).state
        <CameraState.STREAMING: 'streaming'>
    """

    camera_id: str
    url: str
    state: CameraState
    last_error: str | None
    frames_read: int
    frames_dropped: int
    fps: float
    reconnects: int
    last_frame_wall_time: float | None


__all__ = ["TERMINAL_STATES", "CameraReader", "CameraState", "CameraStatus", "Opener"]


class _Session:
    """One connection attempt: written by its session thread, read by the supervisor."""

    def __init__(self, started_at: float) -> None:
        self.started_at = started_at
        self.cancel = threading.Event()  # set under CameraReader._lock, see _emit
        self.done = threading.Event()
        self.capture: Capture | None = None  # the open capture, released by the session thread only
        self.opened_at: float | None = None
        self.last_frame_at: float | None = None
        self.frames = 0
        self.repeated = 0  # frames the capture returned again (not fresh): not delivered
        self.error: str | None = None
        self.ended = False


class CameraReader:
    """Reads one camera/video source on its own thread into ``self.frames`` (newest frames, bounded).

    Example:
        >>> src = SourceSpec.parse("rtsp://user:pw@127.0.0.1:8554/cam1")
        >>> reader = CameraReader("door", src, CaptureSettings(stall_timeout_s=2))
        >>> reader.status().url, reader.status().state
        ('rtsp://user:***@127.0.0.1:8554/cam1', <CameraState.CONNECTING: 'connecting'>)
    """

    def __init__(
        self,
        camera_id: str,
        source: SourceSpec,
        settings: CaptureSettings | None = None,
        *,
        loop: bool = False,
        realtime: bool = True,
        opener: Opener | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.camera_id = camera_id
        self.source = source
        self.settings = settings if settings is not None else CaptureSettings()
        self.loop = loop
        self.realtime = realtime
        self.frames: DropOldestQueue[Frame] = DropOldestQueue(maxsize=self.settings.queue_size)
        self._opener: Opener = opener or open_source
        self._clock = clock
        self._rng = rng or random.Random()
        self._t0 = clock()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._session: _Session | None = None
        self._finished = False
        # Guarded by _lock:
        self._state = CameraState.CONNECTING
        self._last_error: str | None = None
        self._frames_read = 0
        self._reconnects = 0
        self._last_wall: float | None = None
        self._arrivals: collections.deque[float] = collections.deque(maxlen=64)
        self._last_ts = -math.inf
        self._frame_rate: float | None = None  # the source's own fps, once opened

    # ------------------------------------------------------------------ public API
    def start(self) -> None:
        """Start reading in a background thread (once)."""
        if self._thread is not None:
            raise RuntimeError(f"camera reader {self.camera_id!r} was already started")
        self._thread = threading.Thread(target=self._supervise, name=f"capture-{self.camera_id}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop reading, put ``END`` and set state ``stopped`` (``ended``/``failed`` are kept).

        Returns within about ``timeout`` seconds even if a read is blocked: an FFmpeg process is killed;
        a read blocked in OpenCV is abandoned (its daemon thread releases the capture when it returns).
        """
        self._stop.set()
        with self._lock:
            session = self._session
        if session is not None:
            self._cancel(session)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._finish(CameraState.STOPPED)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the reader thread to finish (after ``stop()``, the end of a file, or ``failed``)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def is_alive(self) -> bool:
        """Whether the reader thread is running."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def frame_rate(self) -> float | None:
        """The source's own frames per second once it is open; ``None`` before, or if it does not say."""
        return self._frame_rate

    @property
    def state(self) -> CameraState:
        with self._lock:
            return self._state

    def status(self) -> CameraStatus:
        """A consistent snapshot of the reader's state and counters."""
        now = self._clock()
        with self._lock:
            recent = [t for t in self._arrivals if now - t <= FPS_WINDOW_S]
            span = recent[-1] - recent[0] if len(recent) >= 2 else 0.0
            return CameraStatus(
                camera_id=self.camera_id,
                url=self.source.masked,
                state=self._state,
                last_error=self._last_error,
                frames_read=self._frames_read,
                frames_dropped=self.frames.dropped,
                fps=(len(recent) - 1) / span if span > 0 else 0.0,
                reconnects=self._reconnects,
                last_frame_wall_time=self._last_wall,
            )

    def __repr__(self) -> str:
        return f"CameraReader({self.camera_id!r}, {self.source.masked!r}, state={self.state.value!r})"

    # ------------------------------------------------------------------ supervisor thread
    def _supervise(self) -> None:
        failures = 0  # consecutive connections that delivered no frame
        try:
            while not self._stop.is_set():
                session = _Session(self._clock())
                with self._lock:
                    self._session = session
                threading.Thread(
                    target=self._run_session,
                    args=(session,),
                    name=f"capture-{self.camera_id}-io",
                    daemon=True,
                ).start()
                watchdog_error = self._watch(session)
                self._end_session(session)
                if self._stop.is_set():
                    return
                if session.ended:
                    self._finish(CameraState.ENDED)
                    return
                failures = 1 if session.frames else failures + 1
                error = watchdog_error or session.error or f"{self.source.masked} stopped sending frames"
                error = self.source.redact(error)
                if self.source.kind == "file" and not session.frames:
                    # A local file that gives no frame is not a video (or is broken): trying again cannot help.
                    with self._lock:
                        self._last_error = f"{error}; is it a video? Fix the file, then disable and enable the camera"
                    logger.error("camera %s: %s", self.camera_id, self._last_error)
                    self._finish(CameraState.FAILED)
                    return
                max_attempts = self.settings.max_attempts
                if max_attempts is not None and failures >= max_attempts:
                    with self._lock:
                        self._last_error = error
                    logger.error("camera %s: giving up after %d attempts: %s", self.camera_id, failures, error)
                    self._finish(CameraState.FAILED)
                    return
                delay = self.settings.backoff_delay(failures, self._rng)
                with self._lock:
                    self._state = CameraState.RECONNECTING
                    self._last_error = error
                    self._reconnects += 1
                logger.warning("camera %s: %s; reconnecting in %.1fs", self.camera_id, error, delay)
                if self._stop.wait(delay):
                    return
        except Exception as exc:  # a bug here must not kill the service silently
            with self._lock:
                self._last_error = self.source.redact(f"internal error: {type(exc).__name__}: {exc}")
            logger.error("camera %s: reader crashed: %s", self.camera_id, self._last_error)
            self._finish(CameraState.FAILED)
        finally:
            self._finish(CameraState.STOPPED)

    def _watch(self, session: _Session) -> str | None:
        """Wait for ``session`` to end; abandon it on stop, stall or open timeout (returns why)."""
        settings = self.settings
        poll = min(0.1, settings.stall_timeout_s / 4)
        while not session.done.wait(poll):
            if self._stop.is_set():
                self._cancel(session)
                return None
            now = self._clock()
            # Openers enforce open_timeout_s themselves; these limits catch those that do not.
            limit = settings.open_timeout_s + settings.stall_timeout_s
            if session.opened_at is None:
                if now - session.started_at > limit:
                    self._cancel(session)
                    return f"timed out opening {self.source.masked} after {limit:.1f}s"
            elif session.last_frame_at is None and session.repeated == 0:
                if now - session.started_at > limit:  # opened, but the first frame never came
                    self._cancel(session)
                    return f"timed out opening {self.source.masked}: no frame after {limit:.1f}s"
            else:
                last = session.last_frame_at if session.last_frame_at is not None else session.opened_at
                if now - last > settings.stall_timeout_s:
                    self._cancel(session)
                    repeated = f" ({session.repeated} repeated frames ignored)" if session.repeated else ""
                    return f"stalled: no frame from {self.source.masked} for {settings.stall_timeout_s:.1f}s{repeated}"
        return None

    def _cancel(self, session: _Session) -> None:
        """Tell ``session`` to end; an interruptible capture's blocked read returns at once."""
        with self._lock:
            session.cancel.set()
        capture = session.capture
        if isinstance(capture, Interruptible):
            capture.interrupt()

    def _end_session(self, session: _Session) -> None:
        """Make sure ``session`` ends before another starts, so a camera never has two at once.

        An interrupted FFmpeg process returns its read at once; a session blocked in a call that
        cannot be interrupted (OpenCV) is abandoned and releases its own capture when the call returns.
        """
        self._cancel(session)
        if session.done.is_set() or not isinstance(session.capture, Interruptible):
            return
        if not session.done.wait(SESSION_EXIT_S):
            logger.error("camera %s: capture session did not end after being interrupted", self.camera_id)

    def _finish(self, state: CameraState) -> None:
        """Enter a terminal state and put ``END`` — exactly once, after the last frame."""
        with self._lock:
            if self._finished:
                return
            self._finished = True
            session = self._session
            if session is not None:
                session.cancel.set()
            self._state = state
            self.frames.close()
        if session is not None:
            self._cancel(session)
        log = logger.warning if state is CameraState.FAILED else logger.info
        log("camera %s (%s): %s", self.camera_id, self.source.masked, state.value)

    # ------------------------------------------------------------------ session (I/O) thread
    def _run_session(self, session: _Session) -> None:
        try:
            session.capture = self._opener(self.source, self.settings)
            session.opened_at = self._clock()
            if self._stop.is_set():
                return
            if self.source.kind == "file":
                self._frame_rate = nominal_fps(session.capture)
                self._read_file(session)
            else:
                self._read_live(session, session.capture)
        except Exception as exc:  # every failure becomes last_error + reconnect
            session.error = self.source.redact(str(exc) or type(exc).__name__)
        finally:
            if session.capture is not None:
                with contextlib.suppress(Exception):
                    session.capture.release()
                session.capture = None
            session.done.set()

    def _read_live(self, session: _Session, capture: Capture) -> None:
        """Emit fresh frames: the stream position advanced or the pixels changed (see the module doc)."""
        last_pos = -math.inf
        last_image: np.ndarray | None = None
        while not session.cancel.is_set():
            ok, image = capture.read()
            if not ok or image is None:
                session.error = f"read failed on {self.source.masked} (stream ended, timed out or lost)"
                return
            pos = float(capture.get(_CAP_PROP_POS_MSEC))
            advanced = math.isfinite(pos) and pos > last_pos
            if advanced:
                last_pos = pos
            if not advanced and last_image is not None and np.array_equal(image, last_image):
                session.repeated += 1  # a stale frame: not delivered, and not a sign of life
                continue
            last_image = image
            if self._frame_rate is None:
                self._frame_rate = nominal_fps(capture)
            self._emit(session, image, self._clock() - self._t0)

    def _read_file(self, session: _Session) -> None:
        """Emit the file's frames (``capture_frames``' timestamps), reopening at the end when looping.

        Time keeps increasing across loops: each pass starts one frame interval after the last frame.
        """
        capture = session.capture
        if capture is None:
            raise RuntimeError("file session started without an open capture")
        # [clock, ts] of the frame that pacing is measured from; _pace re-bases it after a long gap.
        pace_origin: list[float] = []
        offset = self._last_ts + 1.0 / nominal_fps(capture) if self._last_ts > -math.inf else 0.0
        while True:
            interval = 1.0 / nominal_fps(capture)
            frames = capture_frames(capture, self.camera_id, start=offset)
            frames_this_pass = 0
            while not session.cancel.is_set():
                frame = next(frames, None)
                if frame is None:
                    break
                frames_this_pass += 1
                if not pace_origin:
                    pace_origin[:] = [self._clock(), frame.timestamp]
                if self.realtime:
                    self._pace(session, frame.timestamp, pace_origin)
                if session.cancel.is_set():
                    return
                self._emit(session, frame.image, frame.timestamp)
            if session.cancel.is_set():
                return
            if frames_this_pass == 0:
                raise RuntimeError(f"no readable frames in {self.source.masked}")
            if not self.loop:
                session.ended = True
                return
            offset = self._last_ts + interval
            # Reopen rather than seek: works for every container and for injected captures.
            session.capture = None
            capture.release()
            capture = session.capture = self._opener(self.source, self.settings)

    def _pace(self, session: _Session, ts: float, pace_origin: list[float]) -> None:
        """Sleep until ``ts`` is due on the reader's clock."""
        origin_clock, origin_ts = pace_origin
        delay = origin_clock + (ts - origin_ts) - self._clock()
        # A gap in the file's timestamps must not look like a stall to the watchdog: cap the wait
        # and measure later frames from here.
        cap = self.settings.stall_timeout_s / 2
        if delay > cap:
            pace_origin[:] = [self._clock() + cap, ts]
            delay = cap
        if delay > 0:
            session.last_frame_at = self._clock() + delay  # waiting on purpose is not a stall
            session.cancel.wait(delay)

    def _emit(self, session: _Session, image: np.ndarray, ts: float) -> None:
        now = self._clock()
        wall = time.time()
        with self._lock:
            # Checked under the lock that cancel is set under: an abandoned session can never
            # deliver a frame after its successor started or after END.
            if session.cancel.is_set():
                return
            ts = max(ts, self._last_ts)  # never go back in time, even across reconnects
            self._last_ts = ts
            index = self._frames_read
            self._frames_read += 1
            self._arrivals.append(now)
            self._last_wall = wall
            session.frames += 1
            session.last_frame_at = now
            first = self._state is not CameraState.STREAMING
            if first:
                self._state = CameraState.STREAMING
            self.frames.put(Frame(self.camera_id, index, ts, wall, image))
        if first:
            logger.info("camera %s: streaming from %s", self.camera_id, self.source.masked)
