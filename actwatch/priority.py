"""Thread priorities: run a stage's threads at a lower OS scheduling priority (a higher niceness).

The pipelined runtime gives the detector a niceness (``pipeline.detect_niceness``) so that, where stages
compete for the same cores (a CPU box), the later stages of a frame (tracking, the action model, the event
writer) take the cores first, and each frame reaches its event sooner at the same throughput. Two kinds of
thread do a stage's work: the stage's own Python thread (:func:`lower_thread_priority` at its start) and
the compute threads ONNX Runtime starts when a session is created, which inherit the niceness of the
thread that creates it (:func:`call_at_niceness`).

Only Linux has per-thread niceness; elsewhere both functions do nothing but the call. Lowering a priority
needs no privilege; nothing here ever raises one.

Example:
    >>> call_at_niceness(0, lambda: 6 * 7)
    42
    >>> call_at_niceness(3, current_niceness) == (3 if PER_THREAD_NICENESS else current_niceness())
    True
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

# Linux schedules threads as tasks with their own niceness; other systems share it per process.
PER_THREAD_NICENESS = sys.platform.startswith("linux") and hasattr(os, "setpriority")


def current_niceness() -> int:
    """The calling thread's niceness (Linux), else the process's (0 where there is none)."""
    if not hasattr(os, "getpriority"):
        return 0
    who = threading.get_native_id() if PER_THREAD_NICENESS else 0
    return os.getpriority(os.PRIO_PROCESS, who)


def lower_thread_priority(niceness: int) -> bool:
    """Raise the calling thread's niceness to ``niceness`` (never lowers it); whether it now has it."""
    if niceness <= 0 or not PER_THREAD_NICENESS:
        return False
    tid = threading.get_native_id()
    try:
        if os.getpriority(os.PRIO_PROCESS, tid) < niceness:
            os.setpriority(os.PRIO_PROCESS, tid, niceness)
    except OSError as exc:  # a sandbox may forbid it: the stage still runs, at the usual priority
        log.warning("could not lower the priority of thread %s to niceness %d: %s", tid, niceness, exc)
        return False
    return True


def call_at_niceness(niceness: int, fn: Callable[[], T]) -> T:
    """``fn()`` in a short-lived thread at ``niceness``, so the threads it starts inherit it; its result,
    or its exception re-raised here. With ``niceness`` 0 (or without per-thread niceness) a plain call."""
    if niceness <= 0 or not PER_THREAD_NICENESS:
        return fn()
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        lower_thread_priority(niceness)
        try:
            result.append(fn())
        except BaseException as exc:  # handed to the caller's thread below
            error.append(exc)

    thread = threading.Thread(target=run, name="actwatch-low-priority")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]
