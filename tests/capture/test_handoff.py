"""DropOldestQueue: bounded, newest kept, drops counted, END ends the stream, safe across threads."""

from __future__ import annotations

import threading

import pytest

from actwatch.capture.handoff import END, DropOldestQueue


def test_keeps_the_newest_and_counts_drops() -> None:
    q = DropOldestQueue[int](maxsize=2)
    for i in range(7):
        q.put(i)
        assert len(q) <= 2
    assert (q.dropped, q.put_count, len(q)) == (5, 7, 2)
    assert [q.get_nowait(), q.get_nowait(), q.get_nowait()] == [5, 6, None]


def test_maxsize_one_always_holds_the_latest() -> None:
    q = DropOldestQueue[str](maxsize=1)
    q.put("a")
    q.put("b")
    assert q.get(timeout=0.01) == "b" and q.dropped == 1


def test_end_sentinel_is_delivered_after_the_items_and_can_displace_one() -> None:
    q = DropOldestQueue[int](maxsize=2)
    q.put(1)
    q.put(2)
    q.close()
    assert q.drain() == [2, END]
    assert q.dropped == 1 and repr(END) == "END"


def test_get_times_out_with_none() -> None:
    assert DropOldestQueue[int](maxsize=1).get(timeout=0.01) is None


def test_rejects_a_zero_size() -> None:
    with pytest.raises(ValueError):
        DropOldestQueue[int](maxsize=0)


def test_producer_consumer_threads_lose_nothing_uncounted() -> None:
    q = DropOldestQueue[int](maxsize=2)
    n = 20_000
    got: list[int] = []

    def consume() -> None:
        while (item := q.get(timeout=5)) is not END:
            assert isinstance(item, int)
            got.append(item)

    consumer = threading.Thread(target=consume)
    consumer.start()
    for i in range(n):
        q.put(i)
    q.close()
    consumer.join(10)
    assert not consumer.is_alive()
    assert got == sorted(got) and len(set(got)) == len(got)  # order kept, nothing duplicated
    assert len(got) + q.dropped == n  # every item was either delivered or counted as dropped
