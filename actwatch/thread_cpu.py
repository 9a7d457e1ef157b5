"""CPU time per thread of this process, grouped by the threads' names (Linux ``/proc``).

``actwatch bench`` reports where the host's CPU goes by stage: each pipelined stage runs in its own named
thread (``actwatch-detect``, ``actwatch-action``, …), so the CPU seconds of each thread, read from
``/proc/self/task/<tid>/stat``, are the stage's own work. Threads Python did not start (ONNX Runtime's
intra-op pools, FFmpeg's decoder threads) have no Python name: they are counted together as
:data:`NATIVE`. A thread's seconds are read at each :meth:`ThreadCpu.sample`, so a thread that ends
between two samples loses what it spent since the last one: :meth:`ThreadCpu.by_group` reports that
remainder of the process's total as :data:`UNSAMPLED` rather than leaving the groups short of the total.

Example:
    >>> thread_group("actwatch-evidence_1"), thread_group("actwatch-detect-2"), thread_group("MainThread")
    ('actwatch-evidence', 'actwatch-detect', 'main')
"""

from __future__ import annotations

import os
import re
import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping

NATIVE = "native (ONNX Runtime pools, codecs)"
UNSAMPLED = "unsampled (threads that ended between samples)"

# A thread of /proc: (kernel thread id, start time in clock ticks after boot); the start time tells a
# reused id apart from the thread that had it before.
ThreadKey = tuple[int, int]


def thread_cpu_seconds() -> dict[ThreadKey, float]:
    """User + system CPU seconds of each live thread of this process; empty where ``/proc`` is missing."""
    try:
        tids = os.listdir("/proc/self/task")
        tick_s = 1.0 / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return {}
    seconds: dict[ThreadKey, float] = {}
    for tid in tids:
        fields = _stat_fields(f"/proc/self/task/{tid}/stat")
        if fields is None:  # ended since the listing
            continue
        seconds[(int(tid), int(fields[19]))] = (int(fields[11]) + int(fields[12])) * tick_s
    return seconds


def _stat_fields(path: str) -> list[str] | None:
    """The fields of a ``/proc`` ``stat`` file after the command name (``None`` when it is gone). The
    name is in parentheses and may hold spaces; after it, state is field 3, utime 14, stime 15 and
    starttime 22 (proc(5)), so 0-based 11, 12 and 19 here."""
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (``/proc/<pid>/task/<tid>/children``), ``pid`` first.

    Example:
        >>> process_tree(os.getpid())[0] == os.getpid()
        True
    """
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in _listdir(f"/proc/{current}/task"):
            try:
                with open(f"/proc/{current}/task/{task}/children", encoding="ascii") as f:
                    todo.extend(int(child) for child in f.read().split())
            except OSError:  # ended since the listing
                continue
    return found


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (0.0 once it has ended)."""
    fields = _stat_fields(f"/proc/{pid}/stat")
    if fields is None:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` and its live descendants so far (a benchmark's service and its compute
    processes)."""
    return sum(process_cpu_seconds(member) for member in process_tree(pid))


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def summed(runs: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Several runs' seconds per group (e.g. the processes of one sharded run) added up, most first.

    Example:
        >>> summed([{"main": 1.0, "actwatch-detect": 2.0}, {"main": 2.5}])
        {'main': 3.5, 'actwatch-detect': 2.0}
    """
    groups: defaultdict[str, float] = defaultdict(float)
    for run in runs:
        for name, seconds in run.items():
            groups[name] += seconds
    return most_first(groups)


def most_first(groups: Mapping[str, float]) -> dict[str, float]:
    """``groups`` ordered by their seconds, the largest first."""
    return dict(sorted(groups.items(), key=lambda item: -item[1]))


def thread_group(name: str) -> str:
    """The group a thread's name counts in: a pool's numbered threads count as one, the main thread as
    ``main``."""
    return "main" if name == "MainThread" else re.sub(r"[-_]\d+$", "", name)


class ThreadCpu:
    """CPU seconds per thread group between :meth:`start` and the last :meth:`sample`."""

    def __init__(self) -> None:
        self._base: dict[ThreadKey, float] = {}
        self._last: dict[ThreadKey, float] = {}
        self._names: dict[int, str] = {}
        self._lock = threading.Lock()  # sampled from the sampler's thread and, at the end, the caller's

    def start(self) -> None:
        """Take the threads' seconds so far as the baseline (warm-up and set-up are not counted)."""
        with self._lock:
            self._base = thread_cpu_seconds()
            self._last = dict(self._base)
            self._names_now()

    def sample(self) -> None:
        """Read every live thread's seconds and name; call it often enough that few threads end unseen, and
        once more just before the measured threads stop."""
        with self._lock:
            self._names_now()
            self._last.update(thread_cpu_seconds())

    def by_group(self, total_s: float) -> dict[str, float]:
        """Seconds per group since :meth:`start`, most first; ``total_s`` (the process's CPU seconds over
        the same time) less the groups' sum is reported as :data:`UNSAMPLED` when positive. Every named
        thread seen at a sample has its group, at 0.0 when it spent less than a clock tick (10 ms): a
        stage that hardly worked shows as such instead of missing."""
        groups: defaultdict[str, float] = defaultdict(float)
        with self._lock:
            for key, seconds in self._last.items():
                spent = max(0.0, seconds - self._base.get(key, 0.0))
                name = self._names.get(key[0])
                if name is not None:
                    groups[name] += spent
                elif spent > 0:
                    groups[NATIVE] += spent
        unsampled = total_s - sum(groups.values())
        if unsampled > 0.005:  # under a clock tick: rounding, not a thread
            groups[UNSAMPLED] += unsampled
        return most_first(groups)

    def _names_now(self) -> None:
        for thread in threading.enumerate():
            if thread.native_id is not None:
                self._names[thread.native_id] = thread_group(thread.name)
