"""Bounded hand-off between threads: drop the oldest item, count the drops, end with a sentinel.

A camera produces frames at its own pace; the compute stage must always see the newest frame and
must never make the reader wait or let memory grow. :class:`DropOldestQueue` is that hand-off.

Example:
    >>> q = DropOldestQueue[int](maxsize=2)
    >>> for i in range(5):
    ...     q.put(i)
    >>> q.dropped, q.get_nowait(), q.get_nowait()
    (3, 3, 4)
"""

from __future__ import annotations

import collections
import threading
from typing import Final, Generic, TypeVar

T = TypeVar("T")


class _EndOfStream:
    """Type of :data:`END`; put on a queue to say that no more items will come."""

    def __repr__(self) -> str:
        return "END"


END: Final = _EndOfStream()


class DropOldestQueue(Generic[T]):
    """A thread-safe queue of at most ``maxsize`` items that drops the oldest item when full."""

    def __init__(self, maxsize: int = 2) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self._items: collections.deque[T | _EndOfStream] = collections.deque()
        self._maxsize = maxsize
        self._cond = threading.Condition()
        self.dropped = 0
        self.put_count = 0

    @property
    def maxsize(self) -> int:
        return self._maxsize

    def put(self, item: T | _EndOfStream) -> None:
        """Add ``item``; if the queue is full, discard the oldest item and count it as dropped."""
        with self._cond:
            if len(self._items) >= self._maxsize:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self.put_count += 1
            self._cond.notify_all()  # a get() and a wait_for_put() may both wait

    def close(self) -> None:
        """Put the end-of-stream sentinel :data:`END`."""
        self.put(END)

    def get(self, timeout: float | None = None) -> T | _EndOfStream | None:
        """The oldest item, waiting up to ``timeout`` seconds; ``None`` on timeout."""
        with self._cond:
            if not self._cond.wait_for(lambda: bool(self._items), timeout=timeout):
                return None
            return self._items.popleft()

    def get_nowait(self) -> T | _EndOfStream | None:
        """The oldest item, or ``None`` if the queue is empty."""
        with self._cond:
            return self._items.popleft() if self._items else None

    def drain(self) -> list[T | _EndOfStream]:
        """All items, oldest first, leaving the queue empty."""
        with self._cond:
            items = list(self._items)
            self._items.clear()
            return items

    def newest(self) -> T | _EndOfStream | None:
        """The newest item, left on the queue; ``None`` if the queue is empty."""
        with self._cond:
            return self._items[-1] if self._items else None

    def wait_for_put(self, seen: int, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until an item is put after the ``seen``-th (``put_count`` read
        before); whether one was.

        Example:
            >>> q = DropOldestQueue[int]()
            >>> seen = q.put_count
            >>> q.wait_for_put(seen, timeout=0.0)
            False
            >>> q.put(1)
            >>> q.wait_for_put(seen, timeout=0.0)
            True
        """
        with self._cond:
            return self._cond.wait_for(lambda: self.put_count > seen, timeout=timeout)

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)
