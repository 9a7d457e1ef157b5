"""The pipelined runtime: each phase in its own thread, bounded queues between them.

::

    cameras --intake--> [frames] --detect--> [detected] --track--> [tracked] --action--> [classified]
            --alert--> event writer (store, snapshot JPEG, crops; its own thread)

The detector works on batch N+1 while the action model works on batch N; ONNX Runtime releases the GIL
while it computes, so the threads overlap on the cores. Every queue is bounded. The queues before the
track phase drop their oldest batch when full (counted in :attr:`StageCounters.drops`): a dropped frame
is a frame the trackers never saw, like a frame a reader skipped. From the track phase on, per-track
state changes with each batch, so those queues block instead (back-pressure up to the droppable ones).
A frame older than ``max_frame_age_s`` when the detector reaches it is dropped and counted
(``stale``) rather than processed late. With ``lossless`` (the tests and the as-fast-as-possible
benchmark) every queue blocks and nothing is dropped.

A sentinel ends the stream (:meth:`StagedRunner.stop`); :meth:`StagedRunner.flush` sends a marker
through every phase and the event writer and waits for it, so tests wait for exactly what they check.

Example (lock-step, as the tests drive it; ``pipeline`` is a :class:`~actwatch.service.pipeline.StreamPipeline`)::

    runner = pipeline.staged(lossless=True)
    reader.feed(); runner.submit(); reports = runner.flush()
    runner.stop()
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from actwatch.priority import lower_thread_priority
from actwatch.service.event_writer import EventWriter
from actwatch.service.phases import (
    CameraRemoved,
    FrameBatch,
    StepReport,
)

if TYPE_CHECKING:
    from actwatch.service.pipeline import StreamPipeline

log = logging.getLogger(__name__)

T = TypeVar("T")
STAGE_NAMES = ("intake", "detect", "track", "action", "alert", "writer")


@dataclass(frozen=True, slots=True)
class _Flush:
    """Control message: set ``done`` once every phase before it has finished its work."""

    done: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True, slots=True)
class _Stop:
    """Control message: the end of the stream; each stage passes it on and ends."""


_STOP = _Stop()
_Control = _Flush | _Stop | CameraRemoved


class StageQueue(Generic[T]):
    """A bounded queue between two stages: drop the oldest work item when full, or block the producer.

    Control messages (flush markers, camera removals, the end sentinel) are never dropped and never wait.

    Example:
        >>> q = StageQueue[int]("frames", maxsize=1, drop_oldest=True)
        >>> q.put(1); q.put(2); q.put(CameraRemoved("cam1"))
        >>> q.drops, q.get(), q.get()
        (1, 2, CameraRemoved(camera_id='cam1'))
    """

    def __init__(
        self, name: str, maxsize: int, *, drop_oldest: bool, on_drop: Callable[[T], None] | None = None
    ) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.name = name
        self._on_drop = on_drop  # told of each dropped item (what it held is let go)
        self.maxsize = maxsize
        self.drop_oldest = drop_oldest
        self._items: collections.deque[T | _Control] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        # items taken and not yet done(), by the consumer thread holding each: the order it was taken in
        self._active: dict[int, int] = {}
        self._taken = 0
        self.drops = 0

    def _work(self) -> int:
        return sum(1 for item in self._items if not isinstance(item, _Control))

    def put(self, item: T | _Control) -> None:
        with self._cond:
            if not isinstance(item, _Control):
                if self.drop_oldest:
                    while self._work() >= self.maxsize:
                        oldest = next(i for i in self._items if not isinstance(i, _Control))
                        self._items.remove(oldest)
                        self.drops += 1
                        if self._on_drop is not None:
                            self._on_drop(oldest)
                else:
                    self._cond.wait_for(lambda: self._work() < self.maxsize or self._closed)
            self._items.append(item)
            self._cond.notify_all()

    def get(self) -> T | _Control:
        """The oldest item; the calling consumer thread holds it until its :meth:`done`."""
        with self._cond:
            self._cond.wait_for(lambda: bool(self._items))
            item = self._items.popleft()
            self._taken += 1
            self._active[threading.get_ident()] = self._taken
            self._cond.notify_all()
            return item

    def done(self) -> None:
        """The calling consumer finished the item it took last."""
        with self._cond:
            self._active.pop(threading.get_ident(), None)
            self._cond.notify_all()

    def wait_until_idle(self, timeout: float | None = None, *, consumers: int = 1) -> bool:
        """Wait until the queue is empty and one of its ``consumers`` is free: the next batch handed in now
        is worked on at once, with the freshest frames (rather than waiting, and ageing, here)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._work() == 0 and len(self._active) < consumers, timeout=timeout)

    def wait_for_earlier(self) -> None:
        """Wait until the other consumers have finished every item taken before the caller's (several
        consumers: a control message passes on only after the work that was ahead of it)."""
        with self._cond:
            mine = self._active.get(threading.get_ident(), 0)
            self._cond.wait_for(lambda: all(n >= mine for n in self._active.values()))

    def wait_for_room(self, timeout: float | None = None) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._work() < self.maxsize, timeout=timeout)

    def close(self) -> None:
        """Wake producers waiting for room (the runner is stopping)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return self._work()


Count = TypeVar("Count", int, float)


def added_up(mappings: Iterable[Mapping[str, Count]]) -> dict[str, Count]:
    """Counts by key (drops per queue, busy seconds per stage, …) added up over several runners or
    processes; a key counted as 0 stays.

    Example:
        >>> added_up([{"frames": 1, "stale": 0}, {"frames": 2, "tracks": 4}])
        {'frames': 3, 'stale': 0, 'tracks': 4}
    """
    total: dict[str, Count] = {}
    for counts in mappings:
        for key, value in counts.items():
            total[key] = total[key] + value if key in total else value
    return total


@dataclass(frozen=True, slots=True)
class StageCounters:
    """How busy each stage was and what the runner dropped, since it started.

    ``occupancy``: busy seconds / wall seconds per stage; ``drops``: work items dropped per queue;
    ``stale``: frames dropped for being older than ``max_frame_age_s``; ``evidence_dropped``: events
    written without their snapshot and crops under back-pressure; ``frame_waited_s``: how long the intake
    waited in all for frames due soon.
    """

    wall_s: float
    busy_s: dict[str, float]
    occupancy: dict[str, float]
    drops: dict[str, int]
    stale: int
    evidence_dropped: int
    failures: int
    frame_waited_s: float = 0.0


class StagedRunner:
    """Runs a :class:`~actwatch.service.pipeline.StreamPipeline`'s phases, one thread each.

    ``intake``: a thread takes the newest frame of every camera (of ``detect_batch`` cameras at most, in
    turn) as soon as the detector can take a batch (the service), or up to ``frame_wait_s`` later when
    their next frames are due by then (:meth:`~actwatch.service.camera_set.CameraSet.wait_for_due_frames`);
    without it the caller hands batches in with :meth:`submit` (tests, benchmark).

    ``detect_workers`` threads run the detector side by side, each on its own batch (on a CPU, each
    with a share of the cores: frames in parallel use them better than one frame's operators). A
    camera's next frame waits until its previous one has left the detector, so every camera's frames
    reach tracking in order; a control message (flush, camera removal, the end) passes on only after
    the batches taken before it.
    """

    def __init__(
        self,
        pipeline: StreamPipeline,
        *,
        intake: bool,
        lossless: bool = False,
        queue_size: int = 1,
        max_frame_age_s: float | None = None,
        max_pending_evidence: int = 32,
        evidence_workers: int = 0,
        track_workers: int = 1,
        detect_batch: int | None = None,
        detect_niceness: int = 0,
        detect_workers: int = 1,
        frame_wait_s: float = 0.0,
        on_report: Callable[[StepReport], None] | None = None,
    ) -> None:
        if detect_workers < 1:
            raise ValueError("detect_workers must be >= 1")
        self._pipeline = pipeline
        self.detect_workers = detect_workers
        self._in_detector: set[str] = set()  # cameras with a frame in a detect worker (several workers)
        self._detect_stops = 0  # detect workers that have seen the end sentinel
        self._max_age = max_frame_age_s
        self.detect_batch = detect_batch
        self._detect_niceness = detect_niceness
        self._max_frame_wait_s = frame_wait_s
        self._on_report = on_report
        self._executor = ThreadPoolExecutor(track_workers, "actwatch-track") if track_workers > 1 else None
        self.writer = EventWriter(
            pipeline.sink, max_pending_evidence=max_pending_evidence, render_workers=evidence_workers
        )
        drop = not lossless
        self.frames: StageQueue[FrameBatch] = StageQueue("frames", queue_size, drop_oldest=drop, on_drop=self._release)
        self.detected: StageQueue[object] = StageQueue("detected", queue_size, drop_oldest=drop)
        self.tracked: StageQueue[object] = StageQueue("tracked", queue_size, drop_oldest=False)
        self.classified: StageQueue[object] = StageQueue("classified", queue_size, drop_oldest=False)
        phases = pipeline.make_phases(self.writer, self._executor)
        self._detect, self._track, self._action, self._alert = phases.detect, phases.track, phases.action, phases.alert
        # the phases that keep per-camera state free it when a CameraRemoved passes them
        self._drops_camera = {
            "track": self._track.drop_camera,
            "action": self._action.drop_camera,
            "alert": self._alert.drop_camera,
        }
        self._collect = not intake  # lock-step callers take the reports with flush(); the service does not
        self._busy = dict.fromkeys(STAGE_NAMES, 0.0)
        self._reports: list[StepReport] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.stale = 0
        self.failures = 0
        self.frame_waited_s = 0.0  # the intake's waits for a frame due soon (seconds in all)
        self._started = time.perf_counter()
        stages: list[tuple[str, str, StageQueue[Any], Callable[[Any], object], StageQueue[Any] | None]] = [
            (
                "detect",
                f"detect-{i + 1}" if detect_workers > 1 else "detect",
                self.frames,
                self._detect_fresh,
                self.detected,
            )
            for i in range(detect_workers)
        ]
        stages += [
            ("track", "track", self.detected, self._track, self.tracked),
            ("action", "action", self.tracked, self._action, self.classified),
            ("alert", "alert", self.classified, self._alert, None),
        ]
        self._threads = [
            threading.Thread(target=self._stage, args=(name, inbox, fn, outbox), name=f"actwatch-{thread}", daemon=True)
            for name, thread, inbox, fn, outbox in stages
        ]
        if intake:
            self._threads.append(threading.Thread(target=self._intake, name="actwatch-intake", daemon=True))
        for thread in self._threads:
            thread.start()

    # ------------------------------------------------------------------------------- callers
    def submit(self, limit: int | None = None) -> int:
        """Hand the newest frame of every camera (of at most ``limit`` cameras, those that waited longest)
        to the detector as one batch; how many frames."""
        for camera_id in self._pipeline.cameras.take_removed():
            self.frames.put(CameraRemoved(camera_id))
        items = self._pipeline.cameras.newest_frames(limit, skip=self._cameras_in_detector())
        if items:
            if self.detect_workers > 1:
                with self._lock:
                    self._in_detector.update(item.camera_id for item in items)
            self.frames.put(FrameBatch(tuple(items)))
        return len(items)

    def wait_for_detector(self, timeout: float | None = None) -> bool:
        """Wait until a detect worker is free for the next batch (the intake and the benchmark take the
        newest frames just then, so no batch ages in the queue)."""
        return self.frames.wait_until_idle(timeout, consumers=self.detect_workers)

    def flush(self, timeout: float | None = None) -> list[StepReport]:
        """Wait until everything submitted so far went through every phase and was written; the
        reports of those batches, oldest first. Raises TimeoutError when ``timeout`` passes first."""
        marker = _Flush()
        self.frames.put(marker)
        if not marker.done.wait(timeout):
            raise TimeoutError("the pipeline did not drain in time")
        with self._lock:
            reports, self._reports = self._reports, []
        return reports

    def counters(self) -> StageCounters:
        wall = time.perf_counter() - self._started
        with self._lock:
            busy = dict(self._busy)
        busy["writer"] = self.writer.busy_s
        queues = (self.frames, self.detected, self.tracked, self.classified)
        threads = {"detect": self.detect_workers}  # the detect phase's occupancy is over its workers
        return StageCounters(
            wall_s=wall,
            busy_s=busy,
            occupancy={name: (s / (wall * threads.get(name, 1)) if wall > 0 else 0.0) for name, s in busy.items()},
            drops={q.name: q.drops for q in queues},
            stale=self.stale,
            evidence_dropped=self.writer.evidence_dropped,
            failures=self.failures,
            frame_waited_s=self.frame_waited_s,
        )

    def running(self) -> bool:
        return not self._stop.is_set() and all(t.is_alive() for t in self._threads)

    def stop(self, timeout: float = 10.0) -> None:
        """Send the end sentinel through every stage, wait for them, then drain the writer."""
        if self._stop.is_set():
            return
        self._stop.set()
        self.frames.put(_STOP)
        deadline = time.monotonic() + timeout
        for queue in (self.frames, self.detected, self.tracked, self.classified):
            queue.close()
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.writer.close(max(0.1, deadline - time.monotonic()))
        if self._executor is not None:
            self._executor.shutdown(wait=False)

    # ------------------------------------------------------------------------------- threads
    def _intake(self) -> None:
        idle = self._pipeline.stages.idle_sleep_s
        while not self._stop.is_set():
            if not self.wait_for_detector(idle):
                continue  # the detector is still busy: its next batch is taken when it is free
            if self._max_frame_wait_s > 0:  # a fresher frame due soon (actwatch.service.camera_set)
                waited = self._pipeline.cameras.wait_for_due_frames(
                    self.detect_batch, self._max_frame_wait_s, skip=self._cameras_in_detector()
                )
                with self._lock:
                    self.frame_waited_s += waited
            start = time.perf_counter()
            taken = self.submit(self.detect_batch)
            if taken:
                with self._lock:
                    self._busy["intake"] += time.perf_counter() - start
            else:
                self._stop.wait(idle)

    def _detect_fresh(self, batch: FrameBatch) -> object:
        if self._max_age is not None:
            now = time.time()
            fresh = tuple(i for i in batch.items if now - i.frame.wall_time <= self._max_age)
            if len(fresh) < len(batch.items):
                with self._lock:
                    self.stale += len(batch.items) - len(fresh)
                for item in batch.items:
                    if item not in fresh:
                        self._pipeline.step_metrics.metrics.count_skipped(item.camera_id, 1)
                if not fresh:
                    return None
                batch = FrameBatch(fresh, batch.timer)
        return self._detect(batch)

    def _stage(
        self, name: str, inbox: StageQueue[object], fn: Callable[[object], object], outbox: StageQueue[object] | None
    ) -> None:
        if name == "detect":  # the later phases of a frame take the cores first (actwatch.priority)
            lower_thread_priority(self._detect_niceness)
        while True:
            item = inbox.get()
            try:
                if name == "detect" and self.detect_workers > 1 and not self._detect_control(item, inbox, outbox):
                    return
                if not self._handle(name, item, fn, outbox):
                    return
            finally:
                if name == "detect" and isinstance(item, FrameBatch):
                    self._release(item)  # its result is with tracking: the cameras' next frames may go
                inbox.done()

    def _cameras_in_detector(self) -> set[str]:
        """The cameras with a frame in a detect worker now (several workers): their next frame waits."""
        with self._lock:
            return set(self._in_detector)

    def _release(self, batch: FrameBatch) -> None:
        """The cameras of ``batch`` (detected, or dropped before it) may have their next frame detected."""
        if self.detect_workers > 1:
            with self._lock:
                self._in_detector.difference_update(item.camera_id for item in batch.items)

    def _detect_control(self, item: object, inbox: StageQueue[Any], outbox: StageQueue[Any] | None) -> bool:
        """Several detect workers: a control message waits for the batches taken before it; the end
        sentinel goes round every worker and on from the last. False when this worker ends here."""
        if isinstance(item, _Stop):
            with self._lock:
                self._detect_stops += 1
                last = self._detect_stops == self.detect_workers
            if not last:
                inbox.put(item)  # for the next worker (control messages never wait nor drop)
                return False
        if isinstance(item, _Control):
            inbox.wait_for_earlier()
        return True

    def _handle(
        self, name: str, item: object, fn: Callable[[object], object], outbox: StageQueue[object] | None
    ) -> bool:
        """Work on one item of stage ``name``; False once the end sentinel has passed."""
        if isinstance(item, _Stop):
            if outbox is not None:
                outbox.put(item)
            return False
        if isinstance(item, _Flush) and outbox is None:
            self.writer.flush()
            item.done.set()
            return True
        if isinstance(item, CameraRemoved) and name in self._drops_camera:
            self._drops_camera[name](item)
        if isinstance(item, _Control):
            if outbox is not None:
                outbox.put(item)
            return True
        start = time.perf_counter()
        try:
            out = fn(item)
        except Exception:  # one bad batch must not stop every camera
            out = None
            with self._lock:
                self.failures += 1
            log.exception("pipeline %s stage failed on a batch; continuing", name)
        with self._lock:
            self._busy[name] += time.perf_counter() - start
        if out is None:
            return True
        if outbox is not None:
            outbox.put(out)
            return True
        assert isinstance(out, StepReport)
        if self._collect:
            with self._lock:
                self._reports.append(out)
        if self._on_report is not None:
            self._on_report(out)
        return True
