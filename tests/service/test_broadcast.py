"""The broadcaster: per-client bounded queues, drop-oldest with a count, never blocking the publisher."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import tracemalloc
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar, cast

import numpy as np
import pytest

from actwatch.service.broadcast import Broadcaster, Client, Subscription
from actwatch.service.events import FrameOverlay, TrackOverlay
from actwatch.service.messages import EventMessage, PongMessage, TracksMessage, encode
from actwatch.service.metrics import ServiceMetrics
from actwatch.service.schemas import EventPublic

T = TypeVar("T")
BBox = tuple[float, float, float, float]


def event_msg(n: int, camera: str = "cam1", label: str = "fighting", pad: str | None = None) -> EventMessage:
    """An event message numbered ``n`` (its track id); ``pad`` makes it bigger."""
    event = EventPublic(
        id=f"e{n}",
        camera_id=camera,
        track_id=n,
        label=label,
        score=0.5,
        start_time=0.0,
        frame_time=0.0,
        bbox=[0.0, 0.0, 1.0, 1.0],
        snapshot_url=pad,
        crops_url=None,
    )
    return EventMessage(event)


class LoopThread:
    """An asyncio loop in its own thread, as the API server runs it; the test thread is the pipeline."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the loop (clients live there) and return its result."""

        async def run() -> T:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def settle(self) -> None:
        """Wait until callbacks scheduled so far (the deliveries) have run."""
        for _ in range(3):
            self.run(asyncio.sleep(0))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.close()


def drain(lt: LoopThread, client: Client) -> list[dict[str, Any]]:
    def take() -> list[dict[str, Any]]:
        out = []
        while (text := client.get_nowait()) is not None:
            out.append(json.loads(text))
        return out

    return lt.call(take)


def test_slow_client_is_told_how_many_it_missed(loop_thread: LoopThread) -> None:
    metrics = ServiceMetrics()
    b = Broadcaster(queue_size=5, metrics=metrics)
    b.bind(loop_thread.loop)
    slow = loop_thread.call(b.connect, Subscription())
    for n in range(12):
        b.publish(event_msg(n))
    loop_thread.settle()
    messages = drain(loop_thread, slow)
    assert messages[0] == {"type": "dropped", "count": 7}
    assert [m["event"]["track_id"] for m in messages[1:]] == [7, 8, 9, 10, 11]  # the newest, in order
    assert slow.dropped_total == 7
    assert metrics.registry.get_sample_value("actwatch_ws_dropped_messages_total") == 7.0
    b.publish(event_msg(12))
    loop_thread.settle()
    assert drain(loop_thread, slow) == [json.loads(encode(event_msg(12)))]  # no dropped notice when nothing was lost


def test_publish_never_blocks_and_memory_stays_bounded(loop_thread: LoopThread) -> None:
    b = Broadcaster(queue_size=64)
    b.bind(loop_thread.loop)
    stuck = loop_thread.call(b.connect, Subscription())  # never reads
    reader = loop_thread.call(b.connect, Subscription())
    payload = "x" * 1000
    tracemalloc.start()
    start = time.perf_counter()
    for n in range(10_000):
        b.publish(event_msg(n, "cam1", "a", pad=payload))
    elapsed = time.perf_counter() - start
    loop_thread.settle()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"10k publishes in {elapsed * 1000:.1f} ms, traced peak {peak / 1e6:.1f} MB")
    assert len(stuck) == 64 and len(reader) == 64
    # everything is accounted for: what is queued plus what was dropped
    assert len(stuck) + stuck.dropped_total == 10_000
    # 10k messages of ~1 kB would be ~10 MB per client if queues were unbounded
    assert peak < 6_000_000


def test_publish_from_many_threads(loop_thread: LoopThread) -> None:
    b = Broadcaster(queue_size=10_000)
    b.bind(loop_thread.loop)
    client = loop_thread.call(b.connect, Subscription())

    def pub(k: int) -> None:
        for n in range(500):
            b.publish(event_msg(k * 1000 + n))

    threads = [threading.Thread(target=pub, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    loop_thread.settle()
    got = drain(loop_thread, client)
    assert len(got) == 2000 and b.published == 2000
    for k in range(4):  # each publisher's messages arrive in its order
        ns = [m["event"]["track_id"] for m in got if m["event"]["track_id"] // 1000 == k]
        assert ns == sorted(ns) and len(ns) == 500


def test_subscription_filters(loop_thread: LoopThread) -> None:
    b = Broadcaster(queue_size=100)
    b.bind(loop_thread.loop)
    everything = loop_thread.call(b.connect, Subscription())
    cam2 = loop_thread.call(b.connect, Subscription.of(cameras=["cam2"]))
    falls = loop_thread.call(b.connect, Subscription.of(labels=["falling"], tracks=True))
    b.publish(event_msg(1, "cam1", "fighting"))
    b.publish(event_msg(2, "cam2", "fighting"))
    b.publish(event_msg(3, "cam1", "falling"))
    b.publish(TracksMessage(FrameOverlay("cam1", 1.0, ())))
    loop_thread.settle()
    assert [m.get("event", {}).get("track_id") for m in drain(loop_thread, everything)] == [1, 2, 3]  # no tracks
    assert [m["event"]["track_id"] for m in drain(loop_thread, cam2)] == [2]
    got = drain(loop_thread, falls)
    assert [m["type"] for m in got] == ["event", "tracks"] and got[0]["event"]["track_id"] == 3


def test_after_a_subscription_is_acknowledged_only_what_it_wants_arrives(loop_thread: LoopThread) -> None:
    # The acknowledgement is a reply, and replies go out ahead of queued broadcasts: what was queued under
    # the old subscription must not follow it unless the new one wants it too.
    b = Broadcaster(queue_size=100)
    b.bind(loop_thread.loop)
    client = loop_thread.call(b.connect, Subscription())
    for n, camera in enumerate(("cam1", "cam2", "cam1", "cam2")):
        b.publish(event_msg(n, camera))
    loop_thread.settle()
    loop_thread.call(client.subscribe, Subscription.of(cameras=["cam2"]))
    loop_thread.call(client.reply, PongMessage())  # stands for the acknowledgement
    b.publish(event_msg(4, "cam1"))
    b.publish(event_msg(5, "cam2"))
    loop_thread.settle()
    got = drain(loop_thread, client)
    assert got[0]["type"] == "pong"
    assert [(m["event"]["camera_id"], m["event"]["track_id"]) for m in got[1:]] == [
        ("cam2", 1),
        ("cam2", 3),
        ("cam2", 5),
    ]
    assert client.dropped_total == 0  # the client did not want them: not messages it lost


def test_replies_come_first_and_close_wakes_the_reader(loop_thread: LoopThread) -> None:
    b = Broadcaster(queue_size=4)
    b.bind(loop_thread.loop)
    client = loop_thread.call(b.connect, Subscription())
    b.publish(event_msg(1))
    loop_thread.settle()
    loop_thread.call(client.reply, PongMessage())
    assert [m["type"] for m in drain(loop_thread, client)] == ["pong", "event"]

    async def wait_then_close() -> str | None:
        waiter = asyncio.ensure_future(client.get())
        await asyncio.sleep(0.01)
        b.close()
        return await asyncio.wait_for(waiter, 5)

    assert loop_thread.run(wait_then_close()) is None
    assert b.client_count == 0


def test_numpy_values_are_serialised(loop_thread: LoopThread) -> None:
    b = Broadcaster(queue_size=4)
    b.bind(loop_thread.loop)
    client = loop_thread.call(b.connect, Subscription.of(tracks=True))
    # numpy values that reach a message at run time (the types say int and float)
    track = TrackOverlay(
        track_id=cast(int, np.int64(3)),
        bbox=cast(BBox, tuple(np.array([1.0, 2.0, 3.0, 4.0], np.float32))),
        confidence=cast(float, np.float32(0.5)),
    )
    b.publish(TracksMessage(FrameOverlay("cam1", np.float64(2.5), (track,))))
    loop_thread.settle()
    (msg,) = drain(loop_thread, client)
    assert msg["tracks"] == [
        {"track_id": 3, "bbox": [1.0, 2.0, 3.0, 4.0], "confidence": 0.5, "label": None, "score": None, "static": False}
    ]
    assert msg["frame_time"] == 2.5


def test_unbound_broadcaster_drops_silently() -> None:
    b = Broadcaster(queue_size=4)
    b.publish(event_msg(1))
    assert b.published == 0
