"""The events database and its WAL files are private (0600), like the media files and the token."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from actwatch.service.events import Event
from actwatch.service.store import EventStore


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_database_and_wal_files_are_0600(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)  # the usual umask: files would be 0644
    try:
        db = tmp_path / "events.db"
        store = EventStore(f"sqlite:///{db}", tmp_path / "media")
        store.add(Event("cam1", 1, "fall", 0.9, 1.0, 2.0, (0.0, 0.0, 5.0, 9.0), id="e1"), b"\xff\xd8jpeg")
        files = [db, tmp_path / "events.db-wal", tmp_path / "events.db-shm"]
        assert all(f.exists() for f in files), "WAL mode keeps -wal and -shm files while open"
        assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}
        snapshot = store.snapshot_path("e1")
        assert snapshot is not None and _mode(snapshot) == 0o600
        store.close()
    finally:
        os.umask(old_umask)


def test_an_existing_readable_database_is_made_private(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    EventStore(f"sqlite:///{db}", tmp_path / "media").close()
    os.chmod(db, 0o644)
    EventStore(f"sqlite:///{db}", tmp_path / "media").close()
    assert _mode(db) == 0o600
