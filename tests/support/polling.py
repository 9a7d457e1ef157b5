"""Waiting for something to happen in another thread, without sleeping a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true (returns True) or ``timeout_s`` passes (returns False).

    The timeout only bounds the wait so a broken build fails instead of hanging; it is generous and is
    not what the test asserts about speed.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)
