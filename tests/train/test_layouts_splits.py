"""Input-layout discovery and leakage-free, stratified, deterministic splits."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from actwatch.errors import ActwatchError
from actwatch.train.layouts import LayoutError, detect_layout, discover_videos
from actwatch.train.splits import assign_splits, check_no_leakage


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_layout_a_with_groups(tmp_path: Path) -> None:
    touch(tmp_path / "suspicious-actions" / "fighting" / "f1.mp4")
    touch(tmp_path / "suspicious-actions" / "fighting" / "f2.avi")
    touch(tmp_path / "neutral-actions" / "walking" / "w1.mp4")
    touch(tmp_path / "neutral-actions" / "walking" / "notes.txt")
    assert detect_layout(tmp_path) == "a"
    items = discover_videos(tmp_path)
    assert sorted((v.label, v.group, v.source.name) for v in items) == [
        ("fighting", "suspicious-actions", "f1.mp4"),
        ("fighting", "suspicious-actions", "f2.avi"),
        ("walking", "neutral-actions", "w1.mp4"),
    ]
    assert all(v.split is None for v in items)


def test_layout_a_flat_and_same_names_in_two_classes(tmp_path: Path) -> None:
    touch(tmp_path / "walking" / "clip.mp4")
    touch(tmp_path / "running" / "clip.mp4")
    items = discover_videos(tmp_path, "a")
    assert {v.label for v in items} == {"walking", "running"}
    assert len({v.video_id for v in items}) == 2  # ids stay unique although the file names clash


def test_layout_b_keeps_given_splits(tmp_path: Path) -> None:
    for split in ("train", "test"):
        touch(tmp_path / split / "wave" / f"{split}_v1" / "frame_0001.jpg")
    touch(tmp_path / "train" / "wave" / "empty_video" / "readme.txt")  # no frames: not a video
    assert detect_layout(tmp_path) == "b"
    items = discover_videos(tmp_path)
    assert sorted((v.split, v.label, v.frame_folder) for v in items) == [
        ("test", "wave", True),
        ("train", "wave", True),
    ]


def test_layout_c_csv(tmp_path: Path) -> None:
    touch(tmp_path / "videos" / "a.mp4")
    touch(tmp_path / "b.mp4")
    (tmp_path / "train.csv").write_text("video_name,label\na.mp4,run\n")
    (tmp_path / "test.csv").write_text("video_name,label\nb.mp4,walk\n")
    assert detect_layout(tmp_path) == "c"
    items = {v.source.name: v for v in discover_videos(tmp_path)}
    assert (items["a.mp4"].split, items["a.mp4"].label) == ("train", "run")
    assert (items["b.mp4"].split, items["b.mp4"].label) == ("test", "walk")


def test_layout_errors(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match="does not exist"):
        discover_videos(tmp_path / "missing")
    touch(tmp_path / "readme.txt")
    with pytest.raises(LayoutError, match="matches no input layout"):
        discover_videos(tmp_path)
    (tmp_path / "train.csv").write_text("name,class\nx.mp4,a\n")
    with pytest.raises(LayoutError, match="video_name,label"):
        discover_videos(tmp_path)
    assert issubclass(LayoutError, ActwatchError)


def test_splits_stratified_grouped_deterministic() -> None:
    videos = {f"{label}_{i}": (label, None) for label, n in (("a", 40), ("b", 10), ("c", 3)) for i in range(n)}
    s1 = assign_splits(videos, val_ratio=0.2, test_ratio=0.2, seed=7)
    s2 = assign_splits(dict(reversed(list(videos.items()))), val_ratio=0.2, test_ratio=0.2, seed=7)
    assert s1 == s2  # independent of discovery order
    assert s1 != assign_splits(videos, val_ratio=0.2, test_ratio=0.2, seed=8)
    per_class = Counter((videos[v][0], split) for v, split in s1.items())
    assert (per_class["a", "train"], per_class["a", "val"], per_class["a", "test"]) == (24, 8, 8)
    assert (per_class["b", "train"], per_class["b", "val"], per_class["b", "test"]) == (6, 2, 2)
    # Tiny classes still get one video in each split while keeping one for training.
    assert (per_class["c", "train"], per_class["c", "val"], per_class["c", "test"]) == (1, 1, 1)


def test_given_splits_are_kept_and_val_carved_from_train() -> None:
    videos = {f"tr{i}": ("x", "train") for i in range(10)} | {f"te{i}": ("x", "test") for i in range(3)}
    split = assign_splits(videos, val_ratio=0.2, test_ratio=0.5, seed=0)
    assert all(split[f"te{i}"] == "test" for i in range(3))
    assert Counter(split[f"tr{i}"] for i in range(10)) == {"train": 8, "val": 2}


def test_leakage_check() -> None:
    check_no_leakage({"v1/t1": "train", "v1/t2": "train"}, {"v1/t1": "v1", "v1/t2": "v1"})
    with pytest.raises(ActwatchError, match="both"):
        check_no_leakage({"v1/t1": "train", "v1/t2": "val"}, {"v1/t1": "v1", "v1/t2": "v1"})
