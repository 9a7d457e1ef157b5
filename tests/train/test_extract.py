"""Extraction: the three layouts (whole-frame), bad videos, resume, leakage, and real person tracking."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from actwatch.capture.video_file import read_video, write_video
from actwatch.train.dataset import load_dataset
from actwatch.train.extract import DatasetExtractor, ExtractionSummary, ExtractSettings
from actwatch.train.synthetic import MOTION_CLASSES, motion_clip, write_motion_source

WHOLE = ExtractSettings(whole_frame=True, input_size=(32, 32), fps=10.0, min_frames=8, frames_fps=10.0)


def run(src: Path, out: Path, settings: ExtractSettings = WHOLE) -> ExtractionSummary:
    return DatasetExtractor(settings, progress=False).run(src, out)


def assert_no_leakage(out: Path) -> None:
    ds = load_dataset(out)
    split_of: dict[str, set[str]] = {}
    for rec in ds.sequences:
        split_of.setdefault(rec.video_id, set()).add(rec.split)
    assert all(len(s) == 1 for s in split_of.values()), split_of


def test_layout_a_groups_bad_videos_and_resume(tmp_path: Path) -> None:
    src = write_motion_source(tmp_path / "src", "a", videos_per_class=6, n_frames=16, size=40, group="motion")
    (src / "motion" / "moving_left" / "corrupt.mp4").write_bytes(b"\x00garbage, not a video" * 50)
    write_video(src / "motion" / "moving_right" / "short.avi", motion_clip(np.random.default_rng(1), 1, n_frames=4))
    summary = run(src, tmp_path / "ds")
    print(summary.format_table())

    assert summary.processed == 14 and summary.failed == 2 and summary.skipped == 0
    assert {k.split("-")[0] for k in summary.failures} == {"moving_left__corrupt", "moving_right__short"}
    assert "too short" in next(r for k, r in summary.failures.items() if "short" in k)
    left, right = summary.rows["moving_left"], summary.rows["moving_right"]
    assert (left.videos, left.failed, left.sequences) == (7, 1, 6)
    assert (right.videos, right.failed, right.sequences) == (7, 1, 6)
    ds = summary.index
    assert ds is not None and ds.classes == list(MOTION_CLASSES)
    assert ds.meta["class_groups"] == {"moving_left": "motion", "moving_right": "motion"}
    rec = ds.sequences[0]
    assert rec.group == "motion" and rec.frames == 16
    frames = ds.read_sequence(rec)
    assert frames.shape == (16, 32, 32, 3) and frames.dtype == np.uint8
    assert {r.split for r in ds.sequences} == {"train", "val", "test"}
    assert_no_leakage(tmp_path / "ds")

    # Resume: every video (failed ones too) is already done; nothing is read or rewritten.
    files = [p for p in (tmp_path / "ds").rglob("*") if p.is_file()]
    mtimes = {p: p.stat().st_mtime_ns for p in files}
    again = run(src, tmp_path / "ds")
    assert (again.processed, again.skipped, again.failed, again.frames_read) == (0, 14, 0, 0)
    assert again.rows["moving_left"].skipped == 7 and again.rows["moving_left"].sequences == 6
    assert {p: p.stat().st_mtime_ns for p in files} == mtimes
    assert sorted(p for p in (tmp_path / "ds").rglob("*") if p.is_file()) == sorted(files)

    # A new video is picked up on the next run; settings that change the stored crops are refused.
    write_video(src / "motion" / "moving_left" / "late.avi", motion_clip(np.random.default_rng(2), -1))
    third = run(src, tmp_path / "ds")
    assert (third.processed, third.skipped) == (1, 14)
    with pytest.raises(Exception, match="other settings"):
        run(src, tmp_path / "ds", WHOLE.model_copy(update={"input_size": (48, 48)}))


def test_layout_b_frame_folders_keep_splits(tmp_path: Path) -> None:
    src = write_motion_source(tmp_path / "src", "b", videos_per_class=3, n_frames=12, size=40)
    summary = run(src, tmp_path / "ds", WHOLE.model_copy(update={"png": True}))
    ds = summary.index
    assert ds is not None and summary.failed == 0 and len(ds.sequences) == 6
    given = {"000": "train", "001": "val", "002": "test"}  # write_motion_source deals them in turn
    for rec in ds.sequences:
        assert rec.split == given[rec.video_id.split("-")[0][-3:]]
        assert (ds.root / rec.path).is_dir()  # --png: one PNG per frame
        assert ds.read_sequence(rec).shape == (12, 32, 32, 3)


def test_layout_c_csv_and_missing_file(tmp_path: Path) -> None:
    src = write_motion_source(tmp_path / "src", "c", videos_per_class=3, n_frames=12, size=40)
    with (src / "train.csv").open("a") as fh:
        fh.write("missing.avi,moving_left\n")
    summary = run(src, tmp_path / "ds")
    assert summary.failed == 1 and "not found" in next(iter(summary.failures.values()))
    ds = load_dataset(tmp_path / "ds")
    assert sorted({r.split for r in ds.sequences}) == ["test", "train", "val"]
    assert len(ds.sequences) == 6
    assert_no_leakage(tmp_path / "ds")


@pytest.mark.slow
def test_person_extraction_on_vtest(vtest_path: Path, detector_weights: Path, tmp_path: Path) -> None:
    # The first 40 frames (4 s) of vtest.avi, copied into a class folder.
    frames = [frame.image for frame in read_video(vtest_path, max_frames=40)]
    write_video(tmp_path / "src" / "walking" / "vtest40.avi", np.stack(frames), fps=10.0)
    settings = ExtractSettings(
        detector=detector_weights, conf=0.1, input_size=(64, 64), fps=5.0, min_frames=8, max_persons=3
    )
    summary = run(tmp_path / "src", tmp_path / "ds", settings)
    print(summary.format_table())
    ds = summary.index
    assert ds is not None and summary.failed == 0
    row = summary.rows["walking"]
    assert 1 <= row.sequences <= row.persons <= 3  # the person cap holds
    for rec in ds.sequences:
        crops = ds.read_sequence(rec)
        # 40 frames at 10 fps sampled at 5 fps: at most 20 samples per person.
        assert 8 <= len(crops) <= 20 and crops.shape[1:] == (64, 64, 3)
        assert crops.std() > 5  # real image content, not blank crops
    marker = json.loads(next((tmp_path / "ds" / "videos").glob("*.json")).read_text())
    assert marker["status"] == "ok" and marker["frames"] == 20
