"""Limits on authentication: failed attempts per client address, and WebSockets waiting to authenticate.

:class:`AuthThrottle` is a token bucket per client address: each wrong or missing token takes one token;
the bucket holds ``per_minute`` and refills at ``per_minute`` a minute. While a client's bucket is empty
every request of it is refused (429 with ``Retry-After``), *whatever token it sends*: answering a right
guess differently would tell a guesser when it found the token. A client that always sends the right
token never touches its bucket.

Example:
    >>> now = [0.0]
    >>> throttle = AuthThrottle(per_minute=2, clock=lambda: now[0])
    >>> throttle.retry_after("10.0.0.9"), throttle.failed("10.0.0.9"), throttle.failed("10.0.0.9")
    (None, None, 30.0)
    >>> throttle.retry_after("10.0.0.9"), throttle.retry_after("10.0.0.10")
    (30.0, None)
    >>> now[0] = 30.0
    >>> throttle.retry_after("10.0.0.9") is None
    True
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

# Addresses remembered at most; the least recently seen are forgotten first (memory stays bounded
# however many addresses a flood comes from; a forgotten one starts again with a full bucket).
MAX_TRACKED_CLIENTS = 65_536


def client_address(scope: Mapping[str, Any]) -> str:
    """The peer address of an ASGI request or WebSocket scope: what failed attempts are counted by.

    Example:
        >>> client_address({"client": ("10.0.0.9", 50123)}), client_address({})
        ('10.0.0.9', 'unknown')
    """
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class AuthThrottle:
    """Failed-authentication budget per client address (see the module docstring); thread-safe enough for
    one event loop (all calls come from it)."""

    def __init__(
        self,
        per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = MAX_TRACKED_CLIENTS,
    ) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be >= 1")
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.clock = clock
        self._max_clients = max_clients
        self._buckets: collections.OrderedDict[str, _Bucket] = collections.OrderedDict()

    def _bucket(self, client: str) -> _Bucket | None:
        bucket = self._buckets.get(client)
        if bucket is None:
            return None
        now = self.clock()
        bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens >= self.capacity:  # refilled: nothing left to remember
            del self._buckets[client]
            return None
        self._buckets.move_to_end(client)
        return bucket

    def retry_after(self, client: str) -> float | None:
        """Seconds until ``client`` may try again, or ``None`` if it may try now."""
        bucket = self._bucket(client)
        if bucket is None or bucket.tokens >= 1.0:
            return None
        return (1.0 - bucket.tokens) / self.rate

    def failed(self, client: str) -> float | None:
        """Count one failed attempt of ``client``; the seconds it must now wait, or ``None`` if none."""
        bucket = self._bucket(client)
        if bucket is None:
            bucket = self._buckets[client] = _Bucket(self.capacity, self.clock())
            while len(self._buckets) > self._max_clients:
                self._buckets.popitem(last=False)
        bucket.tokens = max(0.0, bucket.tokens - 1.0)
        return self.retry_after(client)


class ConnectionSlots:
    """A count of things in progress with an upper bound (here: WebSockets waiting for their ``auth``).

    Example:
        >>> slots = ConnectionSlots(1)
        >>> slots.acquire(), slots.acquire(), slots.in_use
        (True, False, 1)
        >>> slots.release(); slots.acquire()
        True
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.limit = limit
        self.in_use = 0

    def acquire(self) -> bool:
        if self.in_use >= self.limit:
            return False
        self.in_use += 1
        return True

    def release(self) -> None:
        self.in_use = max(0, self.in_use - 1)
