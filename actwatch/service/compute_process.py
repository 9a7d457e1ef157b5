"""One compute process of a sharded service, seen from the service: :class:`ComputeProcess`.

It starts the process (``spawn``: :func:`~actwatch.service.shard_worker.run_shard`), holds the queues to
and from it and the cameras it runs (the truth a restart re-adds from), answers numbered commands
(:meth:`ComputeProcess.call`), and runs the receiver thread that handles everything the process sends
(events into the service's sink, answers, upload jobs' progress, reports, log records) and starts it
again when it dies; an upload job running there then fails with the reason. The
:class:`~actwatch.service.shards.ShardedController` owns one per process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue as queue_module
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from actwatch.capture.sources import mask_credentials
from actwatch.errors import ActwatchError
from actwatch.service.predictions import JobCancelled, JobProgress, PredictionOutcome
from actwatch.service.shard_messages import (
    AddCamera,
    Answer,
    CancelUpload,
    Command,
    Done,
    LiveFrameReply,
    Reply,
    RunUpload,
    ShardEvent,
    ShardFailed,
    ShardLog,
    ShardReady,
    ShardReport,
    ShardTracks,
    StartCompute,
    StopCompute,
    UploadFinished,
    UploadProgress,
)
from actwatch.service.shard_worker import run_shard
from actwatch.service.staged import added_up

if TYPE_CHECKING:
    from multiprocessing.context import SpawnContext, SpawnProcess
    from multiprocessing.queues import Queue

    from actwatch.config import AppConfig, CameraConfig
    from actwatch.service.sink import EventSink

log = logging.getLogger(__name__)

QUEUE_SIZE = 256  # messages in flight each way per compute process
START_TIMEOUT_S = 900.0  # building the stages: exports and TensorRT engines on a first start
CALL_TIMEOUT_S = 30.0
LIVE_FRAME_TIMEOUT_S = 5.0
STOP_TIMEOUT_S = 15.0
RESTART_BACKOFF_S = (1.0, 30.0)


# what /metrics counts the messages from compute processes as (actwatch_compute_messages_received_total)
MESSAGE_KINDS: dict[type, str] = {
    ShardEvent: "events",
    ShardTracks: "tracks",
    ShardReport: "reports",
    ShardLog: "logs",
    UploadProgress: "progress",
    Done: "answers",
    LiveFrameReply: "answers",
    UploadFinished: "answers",
    ShardReady: "starts",
    ShardFailed: "starts",
}


class ComputeProcessError(ActwatchError):
    """A compute process could not start, or did not answer."""


class ComputeOwner(Protocol):
    """What a :class:`ComputeProcess` needs of the controller that owns it."""

    context: SpawnContext
    shard_config: AppConfig
    sink: EventSink
    stopping: threading.Event
    started: bool

    def next_request(self) -> int: ...
    def metrics_seen(self, index: int, ready: ShardReady) -> None: ...
    def observe_handoff(self, seconds: float) -> None: ...
    def resend_track_interest(self) -> None: ...
    def repeated_start_up_line(self, line: ShardLog) -> bool: ...


@dataclass(slots=True)
class _Pending:
    done: threading.Event = field(default_factory=threading.Event)
    reply: Answer | None = None
    on_progress: Callable[[float], None] | None = None  # an upload job's


class ComputeProcess:
    """One compute process, the queues to and from it, and the cameras it runs (the truth a restart
    re-adds from). Its receiver thread handles every reply and restarts the process when it dies."""

    def __init__(self, index: int, owner: ComputeOwner) -> None:
        self.index = index
        self._owner = owner
        self.cameras: dict[str, CameraConfig] = {}
        self.report: ShardReport | None = None
        self.down_reason: str | None = None  # set while the process is being restarted
        self.restarts = 0
        self.dropped_before: dict[str, int] = {}  # what earlier runs of the process dropped (their reports end)
        self.received: dict[str, int] = {}  # messages read from it, by kind (only the receiver thread writes)
        self._backoff = RESTART_BACKOFF_S[0]
        self._lock = threading.Lock()
        self._pending: dict[int, _Pending] = {}
        self._ready = threading.Event()
        self._drained = threading.Event()  # the process ended and the receiver read all it had sent
        self._failure: ShardFailed | None = None
        self._process: SpawnProcess | None = None
        self._commands: Queue[Command] | None = None
        self._replies: Queue[Reply] | None = None
        self._receiver: threading.Thread | None = None

    # ------------------------------------------------------------------------------- process
    def spawn(self) -> None:
        """Start the process (and, the first time, the receiver thread); returns at once."""
        owner = self._owner
        context = owner.context
        commands: Queue[Command] = context.Queue(QUEUE_SIZE)
        replies: Queue[Reply] = context.Queue(QUEUE_SIZE)
        process = context.Process(
            target=run_shard,
            args=(self.index, owner.shard_config, commands, replies, logging.getLogger().level, os.getpid()),
            name=f"actwatch-compute-{self.index}",
            daemon=True,
        )
        self._ready.clear()
        self._drained.clear()
        self._failure = None
        process.start()
        # Only the compute process writes replies: with this process's copy of the write end closed, the
        # end of that process is an end of file here, even in the middle of a message (SIGKILL while
        # sending an event), instead of a read waiting for the rest for ever.
        getattr(replies, "_writer").close()  # noqa: B009 (multiprocessing has no public call for it)
        with self._lock:
            self._process, self._commands, self._replies = process, commands, replies
        if self._receiver is None:
            self._receiver = threading.Thread(
                target=self._receive_loop, name=f"actwatch-shard-{self.index}", daemon=True
            )
            self._receiver.start()

    def wait_ready(self, timeout: float) -> None:
        """Wait until the stages are built; raise :class:`ComputeProcessError` (``ActwatchError``'s
        message for a user mistake) when they could not be."""
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.2):
            failure = self._failure
            if failure is not None:
                if failure.user_error:
                    raise ComputeProcessError(failure.message)
                raise ComputeProcessError(f"compute process {self.index} could not start: {failure.message}")
            if self._drained.is_set() and self._failure is None:
                code = self._process.exitcode if self._process is not None else None
                raise ComputeProcessError(f"compute process {self.index} exited with code {code} while starting")
            if time.monotonic() > deadline:
                raise ComputeProcessError(f"compute process {self.index} did not start within {timeout:.0f} s")

    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive() and self._ready.is_set()

    def stop(self) -> None:
        process = self._process
        if process is None:
            return
        if process.is_alive() and self._failure is None:  # (one that failed to start is exiting by itself)
            try:
                self.call(StopCompute(self._owner.next_request()), STOP_TIMEOUT_S)
            except ComputeProcessError as exc:
                log.warning("%s; killing it", exc)
        process.join(STOP_TIMEOUT_S)
        if process.is_alive():
            process.kill()
            process.join(STOP_TIMEOUT_S)
        if self._receiver is not None:
            self._receiver.join(STOP_TIMEOUT_S)

    def dropped(self) -> dict[str, int]:
        """Messages the process dropped for a full queue (track boxes, logs, reports), by kind, in all its
        runs."""
        return added_up([self.dropped_before, self.report.dropped if self.report is not None else {}])

    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    # ------------------------------------------------------------------------------- calls
    def call(self, command: Command, timeout: float | None = CALL_TIMEOUT_S) -> Answer:
        """Send ``command`` and wait for its answer (``timeout=None``: as long as the process lives)."""
        return self._exchange(command, _Pending(), timeout, lambda: None)

    def run_upload(self, command: RunUpload, progress: JobProgress) -> PredictionOutcome:
        """Run an upload job in the process and wait for its end, passing its progress on and its
        cancellation (service stop) in. Raises :class:`~actwatch.service.predictions.JobCancelled`, or
        :class:`ComputeProcessError` when the job failed or the process ended under it."""
        cancel_sent = False

        def check_cancel() -> None:
            nonlocal cancel_sent
            if progress.cancelled() and not cancel_sent:
                cancel_sent = True
                with self._lock:
                    commands = self._commands
                # not a call: its answer would come through this very wait. A full queue: the process is
                # not taking commands, and its end fails the job below.
                if commands is not None:
                    with contextlib.suppress(queue_module.Full):
                        commands.put(CancelUpload(self._owner.next_request(), command.request), timeout=1.0)

        reply = self._exchange(command, _Pending(on_progress=progress.on_progress), None, check_cancel)
        if isinstance(reply, UploadFinished):
            if reply.outcome is not None:
                return reply.outcome
            if reply.cancelled:
                raise JobCancelled
            if reply.user_error:
                raise ActwatchError(reply.error or "the job failed")
            raise ComputeProcessError(f"the job failed in compute process {self.index}: {reply.error}")
        # a Done with an error: the process ended (or is restarting) under the job
        reason = reply.error if isinstance(reply, Done) else None
        raise ComputeProcessError(f"the job's compute process stopped before it finished ({reason})")

    def _exchange(
        self, command: Command, pending: _Pending, timeout: float | None, on_wait: Callable[[], None]
    ) -> Answer:
        with self._lock:
            commands, process = self._commands, self._process
            if commands is None or process is None or self.down_reason is not None:
                raise ComputeProcessError(f"compute process {self.index} is not running ({self.down_reason})")
            self._pending[command.request] = pending
        try:
            deadline = None if timeout is None else time.monotonic() + timeout
            commands.put(command, timeout=CALL_TIMEOUT_S if timeout is None else timeout)
            while not pending.done.wait(0.2):
                on_wait()
                if self._drained.is_set() and not pending.done.is_set():  # everything it sent was read
                    raise ComputeProcessError(f"compute process {self.index} exited (code {process.exitcode})")
                if deadline is not None and time.monotonic() > deadline:
                    raise ComputeProcessError(f"compute process {self.index} did not answer within {timeout:.0f} s")
        except queue_module.Full:
            raise ComputeProcessError(f"compute process {self.index} is not taking commands") from None
        finally:
            with self._lock:
                self._pending.pop(command.request, None)
        assert pending.reply is not None
        return pending.reply

    def _answer_pending(self, reply: Answer) -> None:
        with self._lock:
            pending = self._pending.get(reply.request)
        if pending is not None:
            pending.reply = reply
            pending.done.set()

    def _progress(self, message: UploadProgress) -> None:
        with self._lock:
            pending = self._pending.get(message.request)
        if pending is not None and pending.on_progress is not None:
            pending.on_progress(message.fraction)

    def _fail_pending(self, reason: str) -> None:
        with self._lock:
            waiting = list(self._pending.items())
        for request, pending in waiting:
            pending.reply = Done(request, reason)
            pending.done.set()

    # ------------------------------------------------------------------------------- receiving
    def _receive_loop(self) -> None:
        # Until the service stops and this process has ended with nothing left to read: its last events
        # are stored before the store closes.
        stopping = self._owner.stopping
        while True:
            replies, process = self._replies, self._process
            assert replies is not None and process is not None
            message = self._next(replies, 0.5)
            if message is not None:
                self._handle(message)
                continue
            if process.is_alive():
                continue
            while (message := self._next(replies, 0.05)) is not None:  # what it sent before its end
                self._handle(message)
            self._drained.set()
            if stopping.is_set():
                return
            if self._ready.is_set() or self.down_reason:  # not while starting: wait_ready reports that
                self._respawn(process)

    def _next(self, replies: Queue[Reply], timeout: float) -> Reply | None:
        """The next message; ``None`` when none came within ``timeout``, at the end of the pipe (the end of
        the process, maybe in the middle of a message), or for a message that cannot be unpickled (logged)."""
        try:
            return replies.get(timeout=timeout)
        except (queue_module.Empty, EOFError, OSError):
            return None
        except Exception:
            log.exception("compute process %d sent an unreadable message", self.index)
            return None

    def _handle(self, message: Reply) -> None:
        owner = self._owner
        kind = MESSAGE_KINDS.get(type(message), "other")
        self.received[kind] = self.received.get(kind, 0) + 1
        try:
            if isinstance(message, ShardEvent):
                owner.observe_handoff(time.time() - message.sent_at)
                owner.sink.emit_event(message.alert)
            elif isinstance(message, ShardTracks):
                owner.sink.emit_tracks(message.overlay)
            elif isinstance(message, (Done, LiveFrameReply, UploadFinished)):
                self._answer_pending(message)
            elif isinstance(message, UploadProgress):
                self._progress(message)
            elif isinstance(message, ShardReport):
                self.report = message
            elif isinstance(message, ShardLog):
                if not owner.repeated_start_up_line(message):
                    logging.getLogger(message.name).log(message.level, "[compute %d] %s", self.index, message.message)
            elif isinstance(message, ShardReady):
                owner.metrics_seen(self.index, message)
                self._ready.set()
                if self.down_reason is not None:  # a restart: its cameras go back in another thread,
                    # since their answers come through this one
                    threading.Thread(target=self._resume, name=f"actwatch-resume-{self.index}", daemon=True).start()
            elif isinstance(message, ShardFailed):
                self._failure = message  # at a restart, _respawn shows it as the cameras' error
        except Exception:  # one bad message must not stop the events of every camera of this process
            log.exception("could not handle %s from compute process %d", type(message).__name__, self.index)

    def _respawn(self, dead: SpawnProcess) -> None:
        """Start a dead process again, after the backoff; :meth:`_resume` gives it its cameras once ready."""
        self.restarts += 1
        failure, self._failure = self._failure, None
        if failure is not None and self.down_reason is not None:  # the last restart failed to build the stages
            reason = f"compute process {self.index} could not restart: {failure.message}; trying again"
        else:
            reason = f"compute process {self.index} exited with code {dead.exitcode}; restarting"
        reason = mask_credentials(reason)
        log.error("%s in %.0f s (restart %d, %d camera(s))", reason, self._backoff, self.restarts, len(self.cameras))
        with self._lock:
            self.down_reason = reason
        self._fail_pending(reason)
        for kind, n in self.dropped().items():
            self.dropped_before[kind] = n
        self.report = None
        if not self._owner.stopping.wait(self._backoff):
            self._backoff = min(self._backoff * 2, RESTART_BACKOFF_S[1])
            self.spawn()

    def _resume(self) -> None:
        with self._lock:
            self.down_reason = None
            cameras = list(self.cameras.values())
        try:
            for camera in cameras:
                raise_on_error(self.call(AddCamera(self._owner.next_request(), camera)))
            if self._owner.started:
                raise_on_error(self.call(StartCompute(self._owner.next_request())))
        except Exception as exc:  # its cameras' statuses say what is wrong; the others go on
            log.error("compute process %d restarted, but resuming its cameras failed: %s", self.index, exc)
            return
        self._backoff = RESTART_BACKOFF_S[0]
        self._owner.resend_track_interest()
        log.info("compute process %d restarted with %d camera(s)", self.index, len(cameras))


def raise_on_error(reply: Answer) -> None:
    if isinstance(reply, Done) and reply.error is not None:
        if reply.user_error:
            raise ActwatchError(reply.error)
        raise RuntimeError(reply.error)
