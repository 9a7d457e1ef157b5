"""The hard-example loop: events a reviewer marked as false positives become training sequences.

The service stores each event's crops as a PNG strip (``encode_crops_strip`` in
:mod:`actwatch.service.evidence`: ``T`` crops side by side, oldest left) and the dashboard's review marks
an event ``false_positive`` (the ``review_state`` column of the ``events`` table).
:func:`add_false_positives` reads those events, cuts their strips back into crop sequences and adds
them to an extracted dataset under one class (``background`` by default), each event as its own
"video": splits are re-assigned over all videos with the dataset's own ratios and seed, and the
dataset report and contact sheet are rewritten. Events already added are skipped, so the command can
be run after every review session.

Example (a strip of 3 crops 4 pixels wide):
    >>> import cv2
    >>> strip = np.zeros((4, 12, 3), np.uint8)
    >>> png = cv2.imencode(".png", strip)[1].tobytes()
    >>> decode_crops_strip(png, crop_hw=(4, 4)).shape
    (3, 4, 4, 3)
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import sqlalchemy as sa

from actwatch.errors import ConfigError, DatasetError, StateError
from actwatch.tracker.offline import TrackSequence
from actwatch.train.dataset import DatasetIndex, DatasetWriter, VideoMarker, load_dataset
from actwatch.train.dataset_report import REPORT_JSON, build_report, write_report

log = logging.getLogger(__name__)

FALSE_POSITIVE = "false_positive"
VIDEO_PREFIX = "fp-"


@dataclass(frozen=True, slots=True)
class ReviewedEvent:
    """One event marked false positive: where its crops strip is and what it was taken for."""

    event_id: str
    camera_id: str
    label: str  # what the model said (wrongly)
    frame_time: float
    crops_path: Path | None


@dataclass
class AddSummary:
    """What :func:`add_false_positives` did."""

    added: int = 0
    skipped: int = 0  # added by an earlier run
    failed: dict[str, str] = field(default_factory=dict)  # event id -> reason
    index: DatasetIndex | None = None


def decode_crops_strip(png: bytes, crop_hw: tuple[int, int]) -> np.ndarray:
    """The ``(T, H, W, 3)`` crops of a strip; crops are resized to ``crop_hw`` when the service's differ.

    The strip's crops have the strip's height and the aspect ratio of ``crop_hw`` (the service stores
    crops of its model's input size; a dataset for that model has the same size).
    """
    strip = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    if strip is None:
        raise ValueError("not a PNG image")
    h, w = crop_hw
    height = strip.shape[0]
    width = max(1, round(height * w / h))
    if strip.shape[1] % width:
        raise ValueError(
            f"strip of {strip.shape[1]}x{height} pixels is not a row of {width}-pixel crops (the dataset's "
            f"crops are {h}x{w}: is it the dataset of the model that produced these events?)"
        )
    crops = np.stack(np.split(strip, strip.shape[1] // width, axis=1))
    if (height, width) != (h, w):
        crops = np.stack([cv2.resize(c, (w, h), interpolation=cv2.INTER_AREA) for c in crops])
    return crops


def false_positive_events(database_url: str, media_dir: Path) -> list[ReviewedEvent]:
    """Events whose ``review_state`` is ``false_positive``, oldest first."""
    if database_url.startswith("sqlite:///"):
        path = Path(database_url.removeprefix("sqlite:///"))
        if not path.is_file():
            raise ConfigError(f"event database {path} not found; give the service's --data-dir (or --db)")
    engine = sa.create_engine(database_url)
    try:
        try:
            columns = {c["name"] for c in sa.inspect(engine).get_columns("events")}
        except sa.exc.SQLAlchemyError as exc:
            raise StateError(f"cannot read the event database: {str(exc).splitlines()[0]}") from None
        if not columns:
            raise ConfigError("the database has no events table: is it the service's event database?")
        if "review_state" not in columns:
            raise ConfigError(
                "the event database has no review states yet: mark false positives in the dashboard's "
                "history (review) first"
            )
        events = sa.table(
            "events",
            sa.column("id"),
            sa.column("camera_id"),
            sa.column("label"),
            sa.column("frame_time"),
            sa.column("crops_path"),
            sa.column("review_state"),
        )
        query = sa.select(events).where(events.c.review_state == FALSE_POSITIVE).order_by(events.c.frame_time)
        with engine.connect() as conn:
            rows = conn.execute(query).all()
    finally:
        engine.dispose()
    return [
        ReviewedEvent(
            event_id=str(r.id),
            camera_id=str(r.camera_id),
            label=str(r.label),
            frame_time=float(r.frame_time),
            crops_path=media_dir / r.crops_path if r.crops_path else None,
        )
        for r in rows
    ]


def _video_id(event_id: str) -> str:
    return VIDEO_PREFIX + re.sub(r"[^A-Za-z0-9_-]", "_", event_id)


def add_false_positives(events: list[ReviewedEvent], dataset_dir: Path, *, label: str = "background") -> AddSummary:
    """Add the crops of ``events`` to the dataset in ``dataset_dir`` as sequences of class ``label``."""
    index = load_dataset(dataset_dir)
    settings: dict[str, Any] = json.loads((dataset_dir / "extraction.json").read_text())
    writer = DatasetWriter(
        dataset_dir,
        {k: v for k, v in settings.items() if k != "storage"},
        png=settings.get("storage") == "png",
    )
    fps = float(settings.get("fps", index.fps))
    summary = AddSummary()
    for event in events:
        video_id = _video_id(event.event_id)
        if writer.is_done(video_id):
            summary.skipped += 1
            continue
        try:
            if event.crops_path is None or not event.crops_path.is_file():
                raise ValueError("the event has no stored crops (keep_crops off, or purged)")
            crops = decode_crops_strip(event.crops_path.read_bytes(), index.input_size)
        except (ValueError, OSError) as exc:
            summary.failed[event.event_id] = str(exc)
            log.warning("event %s not added: %s", event.event_id, exc)
            continue
        n = len(crops)
        times = event.frame_time - (n - 1 - np.arange(n)) / fps  # the strip ends at the event's frame
        seq = TrackSequence(
            track_id=0,
            segment=0,
            crops=crops,
            timestamps=times,
            frame_indices=np.arange(n),
            boxes=np.zeros((n, 4), np.float32),
            confidences=np.ones(n, np.float32),
            frames_seen=n,
        )
        stored = writer.write_sequence(video_id, seq)
        source = f"event {event.event_id} ({event.camera_id}: {event.label}, marked false positive)"
        marker = VideoMarker(video_id, source, label, None, None, "ok", frames=n, persons=1, sequences=(stored,))
        writer.write_marker(marker)
        summary.added += 1
    if not summary.added and not summary.skipped:
        raise DatasetError("no false-positive event could be added; see the warnings above")
    ratios = index.meta.get("split_ratios") or {}
    summary.index = writer.finalize(
        val_ratio=float(ratios.get("val", 0.15)),
        test_ratio=float(ratios.get("test", 0.15)),
        seed=int(index.meta.get("split_seed", 0)),
    )
    earlier: dict[str, Any] = {}
    if (dataset_dir / REPORT_JSON).is_file():  # keep what extraction recorded about its thresholds
        earlier = json.loads((dataset_dir / REPORT_JSON).read_text())
    report = build_report(
        summary.index,
        writer.markers(),
        min_frames=earlier.get("min_frames"),
        static_left_out=bool(earlier.get("static_tracks_left_out", True)),
    )
    write_report(report, summary.index)
    for warning in report.warnings:
        log.warning("%s", warning)
    return summary
