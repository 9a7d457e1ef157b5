"""Fan-out of live messages to WebSocket clients without ever waiting for one.

The pipeline thread calls :meth:`Broadcaster.publish` with a typed
:data:`~actwatch.service.messages.BroadcastMessage`; it is serialised there (by
:func:`~actwatch.service.messages.encode`), put in a bounded inbox and handed to the event loop with
``loop.call_soon_threadsafe`` (one wake-up per burst). On the loop, every client whose
:class:`~actwatch.service.messages.Subscription` wants it gets it in its own bounded queue. A full
queue drops its *oldest* message and counts it; the client's next read returns
``{"type": "dropped", "count": N}`` first, so a slow client knows what it missed and a fast one never
notices. Memory is bounded by ``inbox_size + clients × queue_size`` messages.

Example:
    >>> import asyncio
    >>> from actwatch.service.events import FrameOverlay
    >>> from actwatch.service.messages import TracksMessage
    >>> async def demo():
    ...     b = Broadcaster(queue_size=2)
    ...     b.bind()
    ...     client = b.connect(Subscription(tracks=True))
    ...     for i in range(5):
    ...         b.publish(TracksMessage(FrameOverlay("c", float(i), ())))
    ...     await asyncio.sleep(0)
    ...     return [await client.get() for _ in range(3)]
    >>> asyncio.run(demo())[0]
    '{"type":"dropped","count":3}'
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from actwatch.service.messages import (
    BroadcastMessage,
    DroppedMessage,
    ReplyMessage,
    Subscription,
    TrackInterest,
    encode,
)

if TYPE_CHECKING:
    from actwatch.service.metrics import ServiceMetrics

log = logging.getLogger(__name__)

_MAX_REPLIES = 32  # direct replies to one client (hello, errors); a client spamming bad messages loses old ones


__all__ = ["Broadcaster", "Client", "Outgoing", "Subscription"]


@dataclass(frozen=True, slots=True, eq=False)
class Outgoing:
    """A broadcast message with its text, serialised once for every client."""

    message: BroadcastMessage
    text: str

    @classmethod
    def of(cls, message: BroadcastMessage) -> Outgoing:
        return cls(message, encode(message))


class Client:
    """One client's bounded queue; used on the event loop only (by its WebSocket sender task).

    Example:
        >>> from actwatch.service.events import FrameOverlay
        >>> from actwatch.service.messages import TracksMessage
        >>> c = Client(maxsize=1, subscription=Subscription(tracks=True))
        >>> c.offer(Outgoing.of(TracksMessage(FrameOverlay("c", 1.0, ()))))
        >>> c.offer(Outgoing.of(TracksMessage(FrameOverlay("c", 2.0, ()))))
        >>> c.get_nowait(), c.get_nowait(), c.get_nowait()
        ('{"type":"dropped","count":1}', '{"type":"tracks","camera_id":"c","frame_time":2.0,"tracks":[]}', None)
    """

    def __init__(self, maxsize: int, subscription: Subscription, metrics: ServiceMetrics | None = None) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.subscription = subscription
        self.maxsize = maxsize
        self.dropped_total = 0
        self._metrics = metrics
        self._items: collections.deque[Outgoing] = collections.deque()
        self._replies: collections.deque[str] = collections.deque(maxlen=_MAX_REPLIES)
        self._pending_dropped = 0
        self._wakeup = asyncio.Event()
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    def offer(self, message: Outgoing) -> None:
        """Queue ``message`` if the subscription wants it, dropping the oldest queued one when full."""
        if self._closed or not self.subscription.wants(message.message):
            return
        if len(self._items) >= self.maxsize:
            self._items.popleft()
            self.add_dropped(1)
        self._items.append(message)
        self._wakeup.set()

    def subscribe(self, subscription: Subscription) -> None:
        """Change what this client gets from now on, and drop the queued broadcasts the new subscription
        does not want: the acknowledgement (a reply) goes out ahead of the queue, so a client that reads
        it gets only what it asked for after it (not counted as dropped: the client does not want them).

        Example:
            >>> from actwatch.service.events import FrameOverlay
            >>> from actwatch.service.messages import TracksMessage
            >>> c = Client(maxsize=4, subscription=Subscription(tracks=True))
            >>> for camera in ("door", "hall", "door"):
            ...     c.offer(Outgoing.of(TracksMessage(FrameOverlay(camera, 1.0, ()))))
            >>> c.subscribe(Subscription.of(["door"], None, True)); len(c), c.dropped_total
            (2, 0)
        """
        self.subscription = subscription
        self._items = collections.deque(item for item in self._items if subscription.wants(item.message))

    def add_dropped(self, count: int) -> None:
        self._pending_dropped += count
        self.dropped_total += count
        if self._metrics is not None:
            self._metrics.count_ws_dropped(count)
        self._wakeup.set()

    def reply(self, message: ReplyMessage) -> None:
        """Send ``message`` to this client only, ahead of queued broadcasts (hello, errors, acks)."""
        if not self._closed:
            self._replies.append(encode(message))
            self._wakeup.set()

    def get_nowait(self) -> str | None:
        """The next text to send: replies, then the dropped notice, then broadcasts; ``None`` if empty."""
        if self._replies:
            return self._replies.popleft()
        if self._pending_dropped:
            count, self._pending_dropped = self._pending_dropped, 0
            return encode(DroppedMessage(count))
        if self._items:
            return self._items.popleft().text
        return None

    async def get(self) -> str | None:
        """Wait for the next text to send; ``None`` once the client is closed."""
        while not self._closed:
            text = self.get_nowait()
            if text is not None:
                return text
            self._wakeup.clear()
            await self._wakeup.wait()
        return None

    def close(self) -> None:
        self._closed = True
        self._items.clear()
        self._wakeup.set()


class Broadcaster:
    """Publishes messages to every subscribed client; :meth:`publish` is safe from any thread.

    Call :meth:`bind` on the event loop at start-up; :meth:`connect`/:meth:`disconnect` run on the loop.

    Example:
        >>> b = Broadcaster(queue_size=8)
        >>> from actwatch.service.events import FrameOverlay
        >>> from actwatch.service.messages import TracksMessage
        >>> b.publish(TracksMessage(FrameOverlay("c", 1.0, ())))  # not bound to a loop yet: nothing to do
        >>> b.client_count
        0
    """

    def __init__(
        self, queue_size: int = 256, *, metrics: ServiceMetrics | None = None, inbox_size: int | None = None
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be >= 1")
        self.queue_size = queue_size
        self._metrics = metrics
        self._inbox_size = inbox_size or max(1024, 4 * queue_size)
        self._inbox: collections.deque[Outgoing] = collections.deque()
        self._inbox_dropped = 0
        self._lock = threading.Lock()
        self._drain_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clients: set[Client] = set()
        self._interest_listeners: list[Callable[[], None]] = []
        self._track_interest = TrackInterest()  # recomputed whenever a client connects, subscribes or leaves
        self.published = 0

    def bind(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Attach to ``loop`` (default: the running loop); messages published before are discarded."""
        self._loop = loop or asyncio.get_running_loop()

    @property
    def client_count(self) -> int:
        return len(self._clients)

    @property
    def dropped_total(self) -> int:
        """Messages dropped so far for the clients connected now."""
        with self._lock:
            clients = list(self._clients)
        return sum(client.dropped_total for client in clients)

    def connect(self, subscription: Subscription | None = None) -> Client:
        """A new client queue (call on the event loop)."""
        client = Client(self.queue_size, subscription or Subscription(), self._metrics)
        with self._lock:  # dropped_total may read the set from another thread (the metrics)
            self._clients.add(client)
        if self._metrics is not None:
            self._metrics.ws_client_connected()
        self._interest_changed()
        return client

    def subscribe(self, client: Client, subscription: Subscription) -> None:
        """Change what ``client`` gets (:meth:`Client.subscribe`), and tell the interest listeners."""
        client.subscribe(subscription)
        self._interest_changed()

    def disconnect(self, client: Client) -> None:
        if client in self._clients:
            with self._lock:
                self._clients.discard(client)
            if self._metrics is not None:
                self._metrics.ws_client_disconnected()
            self._interest_changed()
        client.close()

    def track_interest(self) -> TrackInterest:
        """Whose track boxes the connected clients want (safe from any thread).

        Example:
            >>> b = Broadcaster()
            >>> c = b.connect(Subscription.of(["door"], None, True))
            >>> b.track_interest().cameras, b.track_interest().wants("hall")
            (frozenset({'door'}), False)
        """
        return self._track_interest  # one reference read: the pipeline asks for every frame

    def add_interest_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (on the event loop: it must not block) whenever a client connects, changes its
        subscription or leaves, so a producer elsewhere (a compute process) can stop sending track boxes
        nobody wants."""
        self._interest_listeners.append(listener)

    def _interest_changed(self) -> None:
        with self._lock:
            self._track_interest = TrackInterest.of([client.subscription for client in self._clients])
        for listener in self._interest_listeners:
            try:
                listener()
            except Exception:
                log.exception("a track-interest listener failed")

    def close(self) -> None:
        """Disconnect every client (their ``get`` returns ``None``)."""
        for client in list(self._clients):
            self.disconnect(client)
        self._loop = None

    def publish(self, message: BroadcastMessage) -> None:
        """Queue ``message`` for every client that wants it. Never blocks."""
        loop = self._loop
        if loop is None:
            return
        outgoing = Outgoing.of(message)
        with self._lock:
            self.published += 1
            if len(self._inbox) >= self._inbox_size:
                # The loop is not keeping up at all; drop the oldest and tell every client later.
                self._inbox.popleft()
                self._inbox_dropped += 1
            self._inbox.append(outgoing)
            if self._drain_scheduled:
                return
            self._drain_scheduled = True
        try:
            loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop closed while we were publishing: shutting down
            with self._lock:
                self._drain_scheduled = False

    def _drain(self) -> None:
        with self._lock:
            batch = list(self._inbox)
            self._inbox.clear()
            inbox_dropped, self._inbox_dropped = self._inbox_dropped, 0
            self._drain_scheduled = False
        clients = list(self._clients)
        if inbox_dropped:
            log.warning("event loop fell behind: %d messages dropped before delivery", inbox_dropped)
            for client in clients:
                client.add_dropped(inbox_dropped)
        for message in batch:
            for client in clients:
                client.offer(message)
