"""AuthThrottle and ConnectionSlots on a clock the test moves (no waiting)."""

from __future__ import annotations

import pytest

from actwatch.service.throttle import AuthThrottle, ConnectionSlots


def test_budget_refills_at_its_rate_and_addresses_are_separate() -> None:
    now = [0.0]
    throttle = AuthThrottle(per_minute=6, clock=lambda: now[0])  # one attempt back every 10 s
    for _ in range(5):
        assert throttle.failed("a") is None
    assert throttle.failed("a") == pytest.approx(10.0)
    assert throttle.retry_after("a") == pytest.approx(10.0) and throttle.retry_after("b") is None
    now[0] = 4.0
    assert throttle.retry_after("a") == pytest.approx(6.0)
    now[0] = 10.0
    assert throttle.retry_after("a") is None
    assert throttle.failed("a") == pytest.approx(10.0)  # the refilled attempt is used up again
    now[0] = 70.0  # a full minute: the bucket is full again and forgotten
    assert throttle.retry_after("a") is None and throttle.failed("a") is None


def test_memory_stays_bounded_under_a_flood_of_addresses() -> None:
    throttle = AuthThrottle(per_minute=1, clock=lambda: 0.0, max_clients=100)
    for i in range(10_000):
        throttle.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(throttle._buckets) == 100
    assert throttle.retry_after("10.0.39.15") is not None  # the most recent are remembered
    assert throttle.retry_after("10.0.0.0") is None  # the oldest were forgotten


def test_connection_slots() -> None:
    slots = ConnectionSlots(2)
    assert slots.acquire() and slots.acquire() and not slots.acquire()
    slots.release()
    assert slots.acquire() and slots.in_use == 2
    with pytest.raises(ValueError):
        ConnectionSlots(0)
