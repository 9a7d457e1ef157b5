"""The hard-example loop: events reviewed as false positives become background sequences of a dataset.

A real event store (SQLite file and media folder, written by the service's own ``EventStore``) holds
events with crop strips; a reviewer's verdict is the ``review_state`` column of the dashboard's review.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from actwatch.service.events import Event
from actwatch.service.store import EventStore
from actwatch.train.dataset import load_dataset
from actwatch.train.synthetic import write_motion_dataset


def run_cli(args: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    from actwatch.cli.main import main

    monkeypatch.setattr(sys, "argv", ["actwatch", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    return int(exc.value.code or 0)


def mark_reviews(db: Path, states: dict[str, str]) -> None:
    """What the dashboard's review does: set ``review_state`` (the column is added on stores created
    before the review existed, as the store itself does)."""
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("events")}
        if "review_state" not in columns:
            conn.execute(sa.text("ALTER TABLE events ADD COLUMN review_state VARCHAR(32)"))
        for event_id, state in states.items():
            conn.execute(sa.text("UPDATE events SET review_state = :s WHERE id = :i"), {"s": state, "i": event_id})
    engine.dispose()


def test_false_positives_become_background_sequences(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ds = write_motion_dataset(tmp_path / "ds", videos_per_class=4, n_frames=12, size=32)
    data_dir = tmp_path / "service"
    store = EventStore(f"sqlite:///{data_dir / 'events.db'}", data_dir / "media")
    rng = np.random.default_rng(0)
    strips = {f"ev{i}": rng.integers(0, 255, (10, 32, 32, 3), dtype=np.uint8) for i in range(3)}
    for i, (event_id, crops) in enumerate(strips.items()):
        t = 1_700_000_000.0 + i
        store.add(Event("cam1", i, "fighting", 0.9, t - 2, t, (1.0, 2.0, 30.0, 60.0), id=event_id), None, crops)
    store.close()

    # Before any review: a user error, not a crash.
    args = ["dataset", "add-false-positives", "--data-dir", str(data_dir), "--out", str(ds.root)]
    assert run_cli(args, monkeypatch) == 2
    assert capsys.readouterr().err.startswith("error: ")

    mark_reviews(data_dir / "events.db", {"ev0": "false_positive", "ev1": "acknowledged", "ev2": "false_positive"})
    assert run_cli(args, monkeypatch) == 0
    out = capsys.readouterr().out
    assert "2 false positive(s) added as 'background'" in out, out
    index = load_dataset(ds.root)
    assert index.classes == ["background", "moving_left", "moving_right"]
    background = sorted((r for r in index.sequences if r.label == "background"), key=lambda r: r.seq_id)
    assert [r.video_id for r in background] == ["fp-ev0", "fp-ev2"]
    for rec, event_id in zip(background, ("ev0", "ev2"), strict=True):
        assert np.array_equal(index.read_sequence(rec), strips[event_id])  # the PNG strip is lossless
        assert rec.end_time == pytest.approx(1_700_000_000.0 + int(event_id[-1]))
    report = json.loads((ds.root / "report.json").read_text())
    assert report["classes"]["background"]["sequences"] == 2
    assert "background" in (ds.root / "report.md").read_text()

    # A second run after the next review session adds only what is new.
    assert run_cli(args, monkeypatch) == 0
    assert "0 false positive(s) added as 'background', 2 added before" in capsys.readouterr().out
