"""The typed state a run resumes from, and the typed sequence records of a dataset (old files included)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from actwatch.errors import StateError
from actwatch.train.dataset import load_dataset
from actwatch.train.runs import RunState, load_state, save_state
from actwatch.train.synthetic import write_motion_dataset


def test_run_state_round_trip(tmp_path: Path) -> None:
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.ones(3))], lr=0.1)
    state = RunState(
        epoch=3,
        best_metric=0.75,
        best_epoch=2,
        bad_epochs=1,
        history=({"epoch": 1, "val_loss": 0.5}, {"epoch": 2, "val_loss": None}),
        optimizer=optimizer.state_dict(),
        scaler={"scale": 1.0},
    )
    save_state(tmp_path / "last.state.pt", state)
    loaded = load_state(tmp_path / "last.state.pt")
    assert (loaded.epoch, loaded.best_metric, loaded.best_epoch, loaded.bad_epochs) == (3, 0.75, 2, 1)
    assert loaded.history == state.history and loaded.scheduler is None
    assert loaded.optimizer is not None and loaded.optimizer["param_groups"][0]["lr"] == 0.1
    assert [p.name for p in tmp_path.iterdir()] == ["last.state.pt"]  # no temporary left behind


def test_state_files_of_earlier_versions_still_resume(tmp_path: Path) -> None:
    # The eight loose keys earlier versions wrote.
    legacy = {
        "epoch": 2,
        "optimizer": {"state": {}, "param_groups": []},
        "scheduler": None,
        "scaler": {},
        "best_metric": 0.5,
        "best_epoch": 1,
        "bad_epochs": 1,
        "history": [{"epoch": 1}, {"epoch": 2}],
    }
    torch.save(legacy, tmp_path / "old.pt")
    state = load_state(tmp_path / "old.pt")
    assert (state.epoch, state.best_epoch, len(state.history), state.scaler) == (2, 1, 2, None)
    torch.save({"epoch": 1}, tmp_path / "broken.pt")
    with pytest.raises(StateError, match="incomplete"):
        load_state(tmp_path / "broken.pt")


def test_index_rows_keep_track_segment_and_time_span(tmp_path: Path) -> None:
    ds = write_motion_dataset(tmp_path / "ds", videos_per_class=3, n_frames=12, size=32, fps=10.0)
    rec = ds.sequences[0]
    assert (rec.track_id, rec.segment) == (0, 0)
    assert rec.start_time == pytest.approx(0.0) and rec.end_time == pytest.approx(1.1)
    marker = json.loads((tmp_path / "ds" / "videos" / f"{rec.video_id}.json").read_text())
    assert marker["sequences"][0]["end_time"] == pytest.approx(1.1)

    # An index written before rows kept segment and time span still loads, with the defaults.
    index_path = tmp_path / "ds" / "dataset.json"
    index = json.loads(index_path.read_text())
    for row in index["sequences"]:
        for key in ("segment", "start_time", "end_time"):
            del row[key]
    index_path.write_text(json.dumps(index))
    old = load_dataset(tmp_path / "ds")
    assert [r.seq_id for r in old.sequences] == [r.seq_id for r in ds.sequences]
    assert (old.sequences[0].segment, old.sequences[0].start_time, old.sequences[0].end_time) == (0, None, None)
