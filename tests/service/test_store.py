"""The event store on a real SQLite file and a real PostgreSQL server: rows, media files, queries,
restarts, retention, threads. Every test that opens a store runs on both backends."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from actwatch.service.events import Event
from actwatch.service.evidence import render_snapshot
from actwatch.service.store import EventFilter, EventStore
from tests.support.postgres import PostgresServer

DAY = 86400.0


def make_event(i: int, *, camera: str = "cam1", label: str = "fighting", t: float | None = None) -> Event:
    t = 1_700_000_000.0 + i if t is None else t
    return Event(camera, i, label, 0.5 + i / 1000, t - 2.0, t, (1.0 + i, 2.0, 30.0, 60.0), id=f"ev{i:04d}")


def decode(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not an image"
    return image


def read(path: Path) -> np.ndarray:
    return decode(path.read_bytes())


def jpeg() -> bytes:
    return render_snapshot(np.full((60, 80, 3), 90, np.uint8), (5, 5, 40, 50), "fighting", 0.9)


StoreOpener = Callable[..., EventStore]


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreOpener:
    """Opens the store of this test (the same database each call, so re-opening is a restart)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'db' / 'events.db'}"
    else:
        url = request.getfixturevalue("postgres_server").create_database("events")

    def _open(media_root: Path, **kwargs: Any) -> EventStore:
        return EventStore(url, media_root / "media", **kwargs)

    return _open


def test_add_get_and_files(tmp_path: Path, open_store: StoreOpener) -> None:
    store = open_store(tmp_path)
    crops = np.stack([np.full((16, 12, 3), v, np.uint8) for v in (10, 20, 30)])
    event = make_event(1)
    record = store.add(event, jpeg(), crops)
    assert store.get(event.id) == event
    assert store.get("missing") is None and store.get("../etc/passwd") is None
    snap = store.snapshot_path(event.id)
    assert snap is not None and snap == record.snapshot_path and snap.is_relative_to(tmp_path / "media")
    assert read(snap).shape == (60, 80, 3)
    strip_path = store.crops_path(event.id)
    assert strip_path is not None
    strip = read(strip_path)
    assert strip.shape == (16, 36, 3)  # 3 crops side by side, lossless
    assert np.array_equal(strip[:, 12:24], crops[1])
    assert not list((tmp_path / "media").rglob("*.tmp"))  # atomic writes leave no temporaries
    store.close()


def test_event_without_media(tmp_path: Path, open_store: StoreOpener) -> None:
    store = open_store(tmp_path, keep_crops=False)
    store.add(make_event(1), None, np.zeros((2, 4, 4, 3), np.uint8))
    assert store.get("ev0001") is not None
    assert store.snapshot_path("ev0001") is None and store.crops_path("ev0001") is None


def test_duplicate_and_unsafe_ids(tmp_path: Path, open_store: StoreOpener) -> None:
    store = open_store(tmp_path)
    store.add(make_event(1), jpeg(), None)
    snap = store.snapshot_path("ev0001")
    assert snap is not None
    before = snap.read_bytes()
    with pytest.raises(ValueError, match="already stored"):
        store.add(make_event(1), b"\xff\xd8other", None)
    assert snap.read_bytes() == before  # the stored snapshot was not overwritten
    bad = Event("cam1", 1, "x", 0.5, 0.0, 0.0, (0.0, 0.0, 1.0, 1.0), id="../../evil")
    with pytest.raises(ValueError, match="must match"):
        store.add(bad, jpeg(), None)
    assert store.count() == 1


def test_a_hub_attaches_a_snapshot_whenever_it_comes(
    tmp_path: Path, open_store: StoreOpener, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(tmp_path)
    # before its event: the file waits, and the event picks it up
    assert store.attach_snapshot("ev0001", jpeg()) is False
    early = store.add_if_new(make_event(1), None)
    assert early is not None and early.snapshot_path == store.snapshot_path("ev0001") is not None
    # after its event: the row is pointed at it
    assert store.add_if_new(make_event(2), None) is not None and store.snapshot_path("ev0002") is None
    assert store.attach_snapshot("ev0002", jpeg()) is True and store.snapshot_path("ev0002") is not None
    # while its event is being stored (another hub worker, between the event's look for a waiting file and
    # its insert: the snapshot finds no row to point at yet)
    add = store.add

    def snapshot_arrives_first(event: Event, snapshot_jpeg: bytes | None, *args: Any, **kwargs: Any) -> Any:
        assert store.attach_snapshot(event.id, jpeg()) is False
        return add(event, snapshot_jpeg, *args, **kwargs)

    monkeypatch.setattr(store, "add", snapshot_arrives_first)
    during = store.add_if_new(make_event(3), None)
    assert during is not None and during.snapshot_path == store.snapshot_path("ev0003") is not None
    monkeypatch.undo()
    assert store.add_if_new(make_event(3), None) is None  # stored once
    store.close()


def test_query_filters_order_and_pagination(tmp_path: Path, open_store: StoreOpener) -> None:
    store = open_store(tmp_path)
    for i in range(30):
        store.add(make_event(i, camera=f"cam{i % 3}", label="fighting" if i % 2 else "falling"), None, None)
    items, total = store.query(EventFilter(limit=10))
    assert total == 30 and len(items) == 10
    assert [e.id for e in items] == [f"ev{i:04d}" for i in range(29, 19, -1)]  # newest first
    page3, total3 = store.query(EventFilter(limit=10, offset=20))
    assert total3 == 30 and [e.id for e in page3] == [f"ev{i:04d}" for i in range(9, -1, -1)]
    assert store.query(EventFilter(limit=10, offset=30)) == ([], 30)

    items, total = store.query(EventFilter(camera_id="cam1"))
    assert total == 10 and all(e.camera_id == "cam1" for e in items)
    items, total = store.query(EventFilter(camera_id="cam1", label="fighting"))
    assert total == len([i for i in range(30) if i % 3 == 1 and i % 2]) == 5
    assert {e.id for e in items} == {f"ev{i:04d}" for i in range(30) if i % 3 == 1 and i % 2}

    t0 = 1_700_000_000.0
    items, total = store.query(EventFilter(since=t0 + 10, until=t0 + 20))  # since inclusive, until exclusive
    assert total == 10 and {e.frame_time for e in items} == {t0 + i for i in range(10, 20)}
    assert store.query(EventFilter(label="nothing")) == ([], 0)


def test_survives_reopen(tmp_path: Path, open_store: StoreOpener) -> None:
    store = open_store(tmp_path)
    events = [make_event(i) for i in range(5)]
    for e in events:
        store.add(e, jpeg(), None)
    store.close()
    reopened = open_store(tmp_path)
    assert reopened.count() == 5
    assert reopened.get(events[3].id) == events[3]
    assert reopened.snapshot_path(events[3].id) is not None
    reopened.add(make_event(99), None, None)
    assert reopened.count() == 6


def test_purge_deletes_rows_and_files(tmp_path: Path, open_store: StoreOpener) -> None:
    store = open_store(tmp_path, retention_days=1.0)
    now = 1_700_000_000.0
    old = [make_event(i, t=now - 2 * DAY - i) for i in range(3)]
    fresh = [make_event(10 + i, t=now - 0.5 * DAY) for i in range(2)]
    crops = np.zeros((2, 8, 8, 3), np.uint8)
    for e in old + fresh:
        store.add(e, jpeg(), crops)
    old_files = [store.snapshot_path(e.id) for e in old] + [store.crops_path(e.id) for e in old]
    assert all(p is not None and p.exists() for p in old_files)
    assert store.purge(now) == 3
    assert store.count() == 2 and all(store.get(e.id) is None for e in old)
    assert not any(p is not None and p.exists() for p in old_files)
    assert all(store.snapshot_path(e.id) is not None for e in fresh)
    assert store.purge(now) == 0


def test_concurrent_writers_and_readers(tmp_path: Path, open_store: StoreOpener) -> None:
    store = open_store(tmp_path)
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            for i in range(25):
                store.add(make_event(k * 100 + i), jpeg(), None)
        except BaseException as exc:  # reported below
            errors.append(exc)

    def reader() -> None:
        try:
            for _ in range(50):
                store.query(EventFilter(limit=5))
                store.count()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)] + [
        threading.Thread(target=reader) for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.count() == 100
