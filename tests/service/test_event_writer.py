"""The event writer's render threads, with the real sink and a real SQLite store: evidence is rendered
ahead, side by side, while the writer stores the events one by one in the order they came; what is
stored is byte for byte what the writer's own rendering stores.

Every wait is on the condition the test checks (the renders it waits for, a flush), never on a sleep.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from actwatch.service.broadcast import Broadcaster
from actwatch.service.event_writer import EventWriter
from actwatch.service.events import AlertRecord, Event
from actwatch.service.evidence import encode_crops_strip, render_snapshot
from actwatch.service.metrics import ServiceMetrics
from actwatch.service.sink import EventSink
from actwatch.service.store import EventStore
from tests.support.polling import wait_until

WAIT_S = 120.0  # bounds a broken build's hang; never what a test asserts


def _alert(i: int) -> AlertRecord:
    rng = np.random.default_rng(i)
    frame = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
    crops = rng.integers(0, 255, (4, 32, 24, 3), dtype=np.uint8)
    event = Event("cam1", i, "fall", 0.9, 1_700_000_000.0, 1_700_000_001.0 + i, (10, 10, 60, 90), id=f"ev{i:04d}")
    return AlertRecord(event, frame, crops)


class GatedSink(EventSink):
    """The real sink; the rendering of event 0 waits for the test, and each render says its thread."""

    def __init__(self, store: EventStore) -> None:
        super().__init__(store, Broadcaster(), ServiceMetrics())
        self.gate = threading.Event()
        self.rendered: dict[str, str] = {}  # event id -> the thread that rendered it
        self.lock = threading.Lock()

    def render_evidence(self, alert: AlertRecord) -> AlertRecord:
        if alert.event.id == "ev0000":
            self.gate.wait(WAIT_S)
        out = super().render_evidence(alert)
        with self.lock:
            self.rendered[alert.event.id] = threading.current_thread().name
        return out


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    # stored-at times from a counter: the order the rows were written in, whatever the clock's resolution
    s = EventStore(f"sqlite:///{tmp_path / 'events.db'}", tmp_path / "media", clock=itertools.count(1.0).__next__)
    yield s
    s.close()


def test_render_threads_render_ahead_and_the_writer_stores_in_order(store: EventStore) -> None:
    sink = GatedSink(store)
    writer = EventWriter(sink, render_workers=2)
    alerts = [_alert(i) for i in range(5)]
    for alert in alerts:
        writer.emit_event(alert)
    # Event 0's render is held: the other render thread goes on with the later events meanwhile...
    assert wait_until(lambda: len(sink.rendered) == 4, WAIT_S)
    assert set(sink.rendered) == {a.event.id for a in alerts[1:]}
    assert store.count() == 0  # ...and nothing is stored before event 0: the order is kept
    sink.gate.set()
    assert writer.flush(WAIT_S)
    writer.close()
    assert all(name.startswith("actwatch-evidence") for name in sink.rendered.values())
    records, total = store.query_records()
    assert total == 5
    assert [r.event.id for r in sorted(records, key=lambda r: r.created_at)] == [a.event.id for a in alerts]
    for alert in alerts:  # byte for byte what rendering it in the writer's thread would store
        e = alert.event
        assert alert.frame_bgr is not None and alert.crops is not None
        snapshot, crops = store.snapshot_path(e.id), store.crops_path(e.id)
        assert snapshot is not None and crops is not None
        assert snapshot.read_bytes() == render_snapshot(alert.frame_bgr, e.bbox, e.label, e.score)
        assert crops.read_bytes() == encode_crops_strip(alert.crops)
    assert writer.evidence_dropped == 0 and sink.failures == 0


def test_a_failed_render_ahead_leaves_the_sink_to_render_as_it_stores(
    store: EventStore, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(EventSink):
        def render_evidence(self, alert: AlertRecord) -> AlertRecord:
            raise RuntimeError("render thread broke")

    writer = EventWriter(Broken(store, Broadcaster(), ServiceMetrics()), render_workers=1)
    alert = _alert(7)
    writer.emit_event(alert)
    assert writer.flush(WAIT_S)
    writer.close()
    crops = store.crops_path(alert.event.id)
    assert crops is not None and alert.crops is not None
    assert crops.read_bytes() == encode_crops_strip(alert.crops)
    assert "could not render the evidence of event ev0007 ahead" in caplog.text


def test_without_render_threads_the_writer_renders_each_event_itself(store: EventStore) -> None:
    sink = GatedSink(store)
    sink.gate.set()
    writer = EventWriter(sink, render_workers=0)
    writer.emit_event(_alert(1))
    assert writer.flush(WAIT_S)
    writer.close()
    assert sink.rendered == {} and store.count() == 1 and store.crops_path("ev0001") is not None
