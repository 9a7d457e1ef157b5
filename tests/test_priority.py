"""Thread priorities (actwatch.priority): a thread's niceness is its own, the threads a call starts inherit
it, and nothing here ever raises a priority. Real threads and the real scheduler (Linux, as CI)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import pytest

from actwatch.priority import PER_THREAD_NICENESS, call_at_niceness, current_niceness, lower_thread_priority

T = TypeVar("T")

pytestmark = pytest.mark.skipif(not PER_THREAD_NICENESS, reason="per-thread niceness is Linux's")


def _in_thread(fn: Callable[[], T]) -> T:
    out: list[T] = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    thread.join()
    return out[0]


def test_a_thread_lowers_its_own_priority_only() -> None:
    before = current_niceness()
    assert _in_thread(lambda: (lower_thread_priority(before + 4), current_niceness())) == (True, before + 4)
    assert current_niceness() == before  # the caller's thread is untouched


def test_a_priority_is_never_raised() -> None:
    def lower_then_ask_for_less() -> int:
        lower_thread_priority(current_niceness() + 6)
        lower_thread_priority(current_niceness() - 3)  # asks for a higher priority: ignored
        return current_niceness()

    assert _in_thread(lower_then_ask_for_less) == current_niceness() + 6


def test_threads_started_in_the_call_inherit_its_niceness() -> None:
    # As ONNX Runtime's compute threads do when a session is created in the call.
    base = current_niceness()
    assert call_at_niceness(base + 5, lambda: _in_thread(current_niceness)) == base + 5
    assert current_niceness() == base


def test_the_call_s_exception_reaches_the_caller() -> None:
    def fail() -> None:
        raise ValueError("bad graph")

    with pytest.raises(ValueError, match="bad graph"):
        call_at_niceness(5, fail)
