"""Per-thread CPU time from /proc: a named thread's work is counted as its group's, not another's."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from actwatch.thread_cpu import (
    UNSAMPLED,
    ThreadCpu,
    process_cpu_seconds,
    process_tree,
    thread_cpu_seconds,
    thread_group,
    tree_cpu_seconds,
)


def _burn(cpu_s: float) -> None:
    """Spin until this thread has used ``cpu_s`` seconds of CPU (its own clock, whatever the load)."""
    end = time.thread_time() + cpu_s
    while time.thread_time() < end:
        pass


def test_each_thread_is_read_with_its_start_time() -> None:
    seconds = thread_cpu_seconds()
    assert threading.get_native_id() in {tid for tid, _ in seconds}
    assert all(s >= 0 for s in seconds.values())


def test_a_pool_of_named_threads_counts_as_one_group() -> None:
    assert thread_group("actwatch-evidence_0") == thread_group("actwatch-evidence_12") == "actwatch-evidence"
    assert thread_group("actwatch-detect-3") == "actwatch-detect"
    assert thread_group("actwatch-event-writer") == "actwatch-event-writer"  # no number: the name as it is


def test_cpu_spent_by_named_threads_goes_to_their_group() -> None:
    cpu = ThreadCpu()
    _burn(0.1)  # before start: the baseline, not counted
    cpu.start()
    ready = threading.Barrier(3)

    def burn_then_wait() -> None:
        _burn(0.25)
        ready.wait()  # alive until sampled: its seconds are read while it exists
        ready.wait()

    workers = [threading.Thread(target=burn_then_wait, name=f"actwatch-burn_{i}") for i in range(2)]
    for worker in workers:
        worker.start()
    ready.wait()  # both have burned their share
    cpu.sample()
    ready.wait()
    for worker in workers:
        worker.join()
    groups = cpu.by_group(total_s=0.0)
    # 2 x 0.25 s, to a clock tick (10 ms) each; the main thread's 0.1 s before start is not in any group
    assert 0.48 <= groups["actwatch-burn"] <= 0.6
    assert groups.get("main", 0.0) < 0.1
    # nothing is left over to report as unsampled against a total of 0 (native threads are not asserted on:
    # other tests' idle pools may wake in the window, which is theirs to count)
    assert UNSAMPLED not in groups


def test_what_ended_between_samples_is_reported_as_unsampled() -> None:
    cpu = ThreadCpu()
    cpu.start()
    worker = threading.Thread(target=_burn, args=(0.1,), name="actwatch-short")
    worker.start()
    worker.join()  # ended before any sample: its time is the process's, no thread's
    cpu.sample()
    groups = cpu.by_group(total_s=0.3)
    assert "actwatch-short" not in groups
    assert groups[UNSAMPLED] == pytest.approx(0.3 - sum(v for k, v in groups.items() if k != UNSAMPLED))


def test_a_process_tree_counts_its_children_cpu() -> None:
    # The child burns 0.3 s of its own CPU, says so, and waits: the tree is read while it lives.
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip() == "burnt"
        tree = process_tree(os.getpid())
        assert tree[0] == os.getpid() and child.pid in tree
        child_s = process_cpu_seconds(child.pid)
        assert child_s >= 0.3 - 0.02  # one clock tick of /proc's rounding (1/100 s), and some
        assert tree_cpu_seconds(os.getpid()) >= process_cpu_seconds(os.getpid()) + child_s - 1e-9
    finally:
        if child.stdin is not None:
            child.stdin.close()  # its read ends: it exits
        child.wait(timeout=30)
    assert child.pid not in process_tree(os.getpid()) and process_cpu_seconds(child.pid) == 0.0


_CHILD = """
import sys, time
end = time.process_time() + 0.3
while time.process_time() < end:
    pass
print("burnt", flush=True)
sys.stdin.read()
"""
