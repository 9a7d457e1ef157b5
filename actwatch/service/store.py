"""Event storage: one row per alert (SQLAlchemy Core), its snapshot JPEG and crops PNG on disk.

SQLite (the default, a file in the data folder) runs in WAL mode with a busy timeout, so the pipeline
thread can write while the API reads; any SQLAlchemy URL works (``postgresql+psycopg://…``): only
portable SQL is used. Media files are written atomically (temporary file + rename) *before* the row,
so a row never points at a half-written file; ``purge`` deletes rows first and then their files.

Example:
    >>> import tempfile, pathlib
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> store = EventStore(f"sqlite:///{tmp}/events.db", tmp / "media", retention_days=7)
    >>> e = Event("cam1", 1, "fighting", 0.9, 1.0, 2.0, (0.0, 0.0, 5.0, 9.0), id="e1")
    >>> _ = store.add(e, b"\\xff\\xd8fake-jpeg", None)
    >>> store.get("e1") == e, store.count(), store.snapshot_path("e1").name
    (True, 1, 'e1.jpg')
    >>> store.close()
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool

from actwatch.config import mask_url
from actwatch.errors import StateError
from actwatch.fileio import atomic_write_bytes
from actwatch.service.events import Event
from actwatch.service.evidence import encode_crops_strip

log = logging.getLogger(__name__)

EVENT_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_EVENT_ID = re.compile(EVENT_ID_PATTERN)
_PURGE_BATCH = 500

ReviewState = Literal["new", "acknowledged", "false_positive"]
"""An event's review: ``new`` (stored as NULL), ``acknowledged`` or ``false_positive`` (kept for retraining)."""
REVIEW_STATES: tuple[ReviewState, ...] = get_args(ReviewState)


def _media_rel(event_id: str, suffix: str) -> str:
    """An event file's path under the media folder: 2-character shard folders keep directories small.

    Example:
        >>> _media_rel("e1abc", ".crops.png")
        'e1/e1abc.crops.png'
    """
    return f"{event_id[:2]}/{event_id}{suffix}"


@dataclass(frozen=True, slots=True)
class EventRecord:
    """A stored event with where its media is (``None`` when it has none) and when it was stored."""

    event: Event
    snapshot_path: Path | None
    crops_path: Path | None
    created_at: float
    review_state: ReviewState = "new"


def _events_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "events",
        metadata,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("track_id", sa.Integer, nullable=False),
        sa.Column("label", sa.String(128), nullable=False),
        sa.Column("score", sa.Double, nullable=False),
        sa.Column("start_time", sa.Double, nullable=False),
        sa.Column("frame_time", sa.Double, nullable=False),
        sa.Column("bbox", sa.JSON, nullable=False),
        sa.Column("snapshot_path", sa.String(255), nullable=True),  # relative to media_dir
        sa.Column("crops_path", sa.String(255), nullable=True),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("box", sa.String(64), nullable=True),  # the box an event came from (fleet hub); issue 12
        # NULL = new; "acknowledged" / "false_positive" once reviewed (false positives feed retraining)
        sa.Column("review_state", sa.String(32), nullable=True),
        sa.Index("ix_events_camera_time", "camera_id", "frame_time"),
        sa.Index("ix_events_label_time", "label", "frame_time"),
    )


def _add_missing_columns(engine: Engine, table: sa.Table) -> None:
    """Columns added since a database was created (``box``, ``review_state``), added to it: ``create_all`` only creates
    missing tables. Every such column is nullable, so old rows stay valid."""
    present = {c["name"] for c in sa.inspect(engine).get_columns(table.name)}
    with engine.begin() as conn:
        for column in table.columns:
            if column.name not in present:
                kind = column.type.compile(dialect=engine.dialect)
                conn.execute(sa.text(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}"))


def _make_engine(database_url: str) -> Engine:
    url = sa.make_url(database_url)
    if not url.drivername.startswith("sqlite"):
        return sa.create_engine(url, pool_pre_ping=True)
    in_memory = url.database in (None, "", ":memory:")
    if not in_memory and url.database is not None:
        _private_database_files(Path(url.database).expanduser())
    engine = sa.create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        # One shared connection for an in-memory database, or each thread would see its own empty one.
        poolclass=StaticPool if in_memory else None,
    )

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer and vice versa
            cursor.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; safe with WAL
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()

    return engine


def _private_database_files(path: Path) -> None:
    """Create the SQLite file mode 0600 (SQLite gives its -wal and -shm files the database's mode) and
    take group/other access away from existing ones: events are as private as their snapshots."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))  # a folder named events.db: IsADirectoryError
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if file.exists() and os.stat(file).st_mode & 0o077:
            os.chmod(file, 0o600)


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which stored events to list: all filters optional; ``since`` inclusive and ``until`` exclusive,
    both on ``frame_time`` (Unix seconds); one page of ``limit`` after ``offset``.

    Example:
        >>> EventFilter(label="fall").limit
        50
    """

    camera_id: str | None = None
    label: str | None = None
    box: str | None = None
    since: float | None = None
    until: float | None = None
    review_state: ReviewState | None = None
    limit: int = 50
    offset: int = 0


def _existing(path: Path | None) -> Path | None:
    return path if path is not None and path.is_file() else None


class EventStore:
    """Events in a database, their snapshots and crops in ``media_dir``. Thread-safe; survives restarts.

    ``keep_crops=False`` ignores the crops given to :meth:`add`. ``retention_days`` is what :meth:`purge`
    keeps.

    Example:
        >>> import tempfile, pathlib
        >>> tmp = pathlib.Path(tempfile.mkdtemp())
        >>> store = EventStore("sqlite://", tmp)  # in memory
        >>> store.query(EventFilter(label="fall"))
        ([], 0)
    """

    def __init__(
        self,
        database_url: str,
        media_dir: Path,
        retention_days: float = 30.0,
        *,
        keep_crops: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if retention_days <= 0:
            raise ValueError("retention_days must be > 0")
        self._media_dir = Path(media_dir)
        self.retention_days = retention_days
        self.keep_crops = keep_crops
        self._clock = clock
        self._metadata = sa.MetaData()
        self._events = _events_table(self._metadata)
        shown = mask_url(database_url)
        try:
            self._media_dir.mkdir(parents=True, exist_ok=True)
            self._engine = _make_engine(database_url)
            self._metadata.create_all(self._engine)
            _add_missing_columns(self._engine, self._events)
        except OSError as exc:  # a folder named events.db, a file named media, no write access
            raise StateError(
                f"cannot open the event store ({shown}, media in {self._media_dir}): {exc.strerror or exc}; "
                "check that they are a file and a folder the service may write"
            ) from None
        except sa.exc.SQLAlchemyError as exc:  # a corrupt or foreign file, an unreachable server
            reason = mask_url(str(getattr(exc, "orig", None) or exc).splitlines()[0])
            raise StateError(
                f"cannot open the event database {shown}: {reason}; if it is a SQLite file that is corrupt or "
                "not a database, move it away to start with an empty one"
            ) from None
        # SQLite allows one writer; serialising writes in-process avoids busy retries between our threads.
        self._write_lock = threading.Lock()
        log.info("event store: %s, media in %s", mask_url(database_url), self._media_dir)

    @property
    def media_dir(self) -> Path:
        return self._media_dir

    @property
    def engine(self) -> Engine:
        """The database engine: tables beside the events (the delivery outbox) live in the same database."""
        return self._engine

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """A write transaction under the store's write lock (SQLite has one writer: we queue in-process)."""
        with self._write_lock, self._engine.begin() as conn:
            yield conn

    def close(self) -> None:
        self._engine.dispose()

    # ------------------------------------------------------------------------------------------ writing
    def add(
        self,
        event: Event,
        snapshot_jpeg: bytes | None,
        crops: np.ndarray | Sequence[np.ndarray] | None = None,
        *,
        crops_png: bytes | None = None,
        in_transaction: Callable[[sa.Connection, EventRecord], None] | None = None,
    ) -> EventRecord:
        """Store ``event`` with its snapshot (JPEG bytes) and crops ``(T, H, W, 3)`` uint8 BGR or the
        window's ``T`` crops (or ``crops_png``, the strip :func:`encode_crops_strip` made of them).

        Files first (atomically), then the row; if the row cannot be written the files are removed.
        ``in_transaction(conn, record)`` runs in the row's transaction (the delivery outbox enqueues there:
        an event is stored and queued for delivery together, or neither).
        Raises ``ValueError`` for an unsafe id or an id that is already stored.
        """
        if not _EVENT_ID.match(event.id):
            raise ValueError(f"event id {event.id!r} must match {EVENT_ID_PATTERN}")
        snapshot_rel = _media_rel(event.id, ".jpg") if snapshot_jpeg else None
        has_crops = crops is not None or crops_png is not None
        crops_rel = _media_rel(event.id, ".crops.png") if has_crops and self.keep_crops else None
        if crops_rel is not None and crops_png is None and crops is not None:
            crops_png = encode_crops_strip(crops)
        written: list[Path] = []
        with self._write_lock:
            if self._row(event.id) is not None:
                raise ValueError(f"event {event.id} is already stored")
            try:
                if snapshot_rel is not None and snapshot_jpeg:
                    atomic_write_bytes(self._media_dir / snapshot_rel, snapshot_jpeg, mode=0o600)
                    written.append(self._media_dir / snapshot_rel)
                if crops_rel is not None and crops_png is not None:
                    atomic_write_bytes(self._media_dir / crops_rel, crops_png, mode=0o600)
                    written.append(self._media_dir / crops_rel)
                created_at = self._clock()
                record = EventRecord(
                    event,
                    self._media_dir / snapshot_rel if snapshot_rel else None,
                    self._media_dir / crops_rel if crops_rel else None,
                    created_at,
                )
                with self._engine.begin() as conn:
                    conn.execute(
                        self._events.insert().values(
                            id=event.id,
                            camera_id=event.camera_id,
                            track_id=int(event.track_id),
                            label=event.label,
                            score=float(event.score),
                            start_time=float(event.start_time),
                            frame_time=float(event.frame_time),
                            bbox=[float(v) for v in event.bbox],
                            snapshot_path=snapshot_rel,
                            crops_path=crops_rel,
                            created_at=created_at,
                            box=event.box,
                        )
                    )
                    if in_transaction is not None:
                        in_transaction(conn, record)
            except BaseException:
                for path in written:
                    path.unlink(missing_ok=True)
                raise
        return record

    def add_if_new(self, event: Event, snapshot_jpeg: bytes | None) -> EventRecord | None:
        """:meth:`add`, or ``None`` when ``event.id`` is already stored (by us or, on a shared database,
        by another process): how a fleet hub ingests idempotently. A snapshot that arrived before its
        event (see :meth:`attach_snapshot`) is kept."""
        waiting = self._snapshot_file(event.id)
        if snapshot_jpeg is None and waiting.is_file():
            snapshot_jpeg = waiting.read_bytes()
        try:
            record = self.add(event, snapshot_jpeg)
        except ValueError:
            if self._row(event.id) is not None:
                return None
            raise
        except sa.exc.IntegrityError:  # another writer stored it between our check and our insert
            return None
        if record.snapshot_path is None and waiting.is_file():
            # The snapshot came while the event was being stored (another worker): attach_snapshot wrote
            # its file, then found no row to point at it. It writes before it looks, and we look after we
            # stored, so one of the two always sees the other.
            with self._write_lock:
                self._point_at_snapshot(event.id)
            record = replace(record, snapshot_path=waiting)
        return record

    def _snapshot_file(self, event_id: str) -> Path:
        return self._media_dir / _media_rel(event_id, ".jpg")

    def attach_snapshot(self, event_id: str, snapshot_jpeg: bytes) -> bool:
        """Store the snapshot of ``event_id`` (a hub receives it apart from the event); ``True`` when the
        event is stored and now points at it. Before its event arrives the file waits for
        :meth:`add_if_new`."""
        if not _EVENT_ID.match(event_id) or not snapshot_jpeg:
            return False
        path = self._snapshot_file(event_id)
        with self._write_lock:
            atomic_write_bytes(path, snapshot_jpeg, mode=0o600)
            return self._point_at_snapshot(event_id)

    def _point_at_snapshot(self, event_id: str) -> bool:
        """Point the stored row of ``event_id`` at its snapshot file; ``False`` when no row is stored yet."""
        with self._engine.begin() as conn:
            t = self._events
            updated = conn.execute(
                t.update().where(t.c.id == event_id).values(snapshot_path=_media_rel(event_id, ".jpg"))
            ).rowcount
        return bool(updated)

    def purge(self, now: float | None = None) -> int:
        """Delete events older than ``retention_days`` before ``now`` (default: the clock) and their files."""
        cutoff = (self._clock() if now is None else now) - self.retention_days * 86400.0
        t = self._events
        deleted = 0
        while True:
            with self._write_lock, self._engine.begin() as conn:
                rows = conn.execute(
                    sa.select(t.c.id, t.c.snapshot_path, t.c.crops_path)
                    .where(t.c.frame_time < cutoff)
                    .limit(_PURGE_BATCH)
                ).all()
                if not rows:
                    break
                conn.execute(t.delete().where(t.c.id.in_([r.id for r in rows])))
            # Rows are gone first: a crash here leaves orphan files, never rows pointing at nothing.
            for row in rows:
                for rel in (row.snapshot_path, row.crops_path):
                    if rel:
                        (self._media_dir / rel).unlink(missing_ok=True)
            deleted += len(rows)
        if deleted:
            log.info("purged %d events older than %.1f days", deleted, self.retention_days)
        return deleted

    # ------------------------------------------------------------------------------------------ reading
    def _row(self, event_id: str) -> Any:
        if not _EVENT_ID.match(event_id):
            return None
        with self._engine.connect() as conn:
            return conn.execute(sa.select(self._events).where(self._events.c.id == event_id)).first()

    def _record(self, row: Any) -> EventRecord:
        bbox = row.bbox
        event = Event(
            camera_id=row.camera_id,
            track_id=int(row.track_id),
            label=row.label,
            score=float(row.score),
            start_time=float(row.start_time),
            frame_time=float(row.frame_time),
            bbox=(float(bbox[0]), float(bbox[1]), float(bbox[2]), float(bbox[3])),
            id=row.id,
            box=row.box,
        )
        return EventRecord(
            event,
            self._media_dir / row.snapshot_path if row.snapshot_path else None,
            self._media_dir / row.crops_path if row.crops_path else None,
            float(row.created_at),
            row.review_state or "new",
        )

    def get_record(self, event_id: str) -> EventRecord | None:
        row = self._row(event_id)
        return None if row is None else self._record(row)

    def get(self, event_id: str) -> Event | None:
        """The event with ``event_id``, or ``None``."""
        record = self.get_record(event_id)
        return None if record is None else record.event

    def query_records(self, where: EventFilter | None = None) -> tuple[list[EventRecord], int]:
        """Events matching ``where`` (default: the newest 50), newest first, and how many match in all."""
        where = where or EventFilter()
        if where.limit < 0 or where.offset < 0:
            raise ValueError("limit and offset must be >= 0")
        t = self._events
        conditions: list[Any] = []
        if where.camera_id is not None:
            conditions.append(t.c.camera_id == where.camera_id)
        if where.label is not None:
            conditions.append(t.c.label == where.label)
        if where.box is not None:
            conditions.append(t.c.box == where.box)
        if where.since is not None:
            conditions.append(t.c.frame_time >= where.since)
        if where.until is not None:
            conditions.append(t.c.frame_time < where.until)
        if where.review_state == "new":
            conditions.append(t.c.review_state.is_(None))
        elif where.review_state is not None:
            conditions.append(t.c.review_state == where.review_state)
        matching = sa.and_(sa.true(), *conditions)
        with self._engine.connect() as conn:
            total = int(conn.execute(sa.select(sa.func.count()).select_from(t).where(matching)).scalar_one())
            rows = conn.execute(
                sa.select(t)
                .where(matching)
                .order_by(t.c.frame_time.desc(), t.c.id.desc())
                .limit(where.limit)
                .offset(where.offset)
            ).all()
        return [self._record(row) for row in rows], total

    def query(self, where: EventFilter | None = None) -> tuple[list[Event], int]:
        """Like :meth:`query_records`, events only."""
        records, total = self.query_records(where)
        return [r.event for r in records], total

    def snapshot_path(self, event_id: str) -> Path | None:
        """The snapshot JPEG of ``event_id`` if the event and the file exist."""
        record = self.get_record(event_id)
        return _existing(record.snapshot_path if record else None)

    def crops_path(self, event_id: str) -> Path | None:
        """The crops PNG strip of ``event_id`` if the event and the file exist."""
        record = self.get_record(event_id)
        return _existing(record.crops_path if record else None)

    def set_review(self, event_id: str, state: ReviewState) -> EventRecord | None:
        """Mark ``event_id`` as ``state``; the updated record, or ``None`` if there is no such event."""
        if state not in REVIEW_STATES:
            raise ValueError(f"review state must be one of {', '.join(REVIEW_STATES)}, got {state!r}")
        if not _EVENT_ID.match(event_id):
            return None
        with self._write_lock, self._engine.begin() as conn:
            changed = conn.execute(
                self._events.update()
                .where(self._events.c.id == event_id)
                .values(review_state=None if state == "new" else state)
            ).rowcount
        return self.get_record(event_id) if changed else None

    def delete(self, event_id: str) -> bool:
        """Delete ``event_id``'s row, then its snapshot and crops; whether there was such an event."""
        record = self.get_record(event_id)
        if record is None:
            return False
        with self._write_lock, self._engine.begin() as conn:
            conn.execute(self._events.delete().where(self._events.c.id == event_id))
        for path in (record.snapshot_path, record.crops_path):
            if path is not None:
                path.unlink(missing_ok=True)
        return True

    def count(self) -> int:
        with self._engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(self._events)).scalar_one())
