"""Find the labelled videos of a source folder in one of the three supported layouts.

* ``a`` — class folders of videos, optionally grouped one level up::

      clips/suspicious-actions/fighting/x.mp4     (group "suspicious-actions", label "fighting")
      clips/walking/y.mp4                         (no group, label "walking")

* ``b`` — frame folders in the HMDB51 style, the split given by the top folder::

      frames/train/<class>/<video>/frame_0001.jpg

* ``c`` — a folder of videos plus CSV split files ``train.csv``, ``val.csv``, ``test.csv`` with the
  columns ``video_name,label``.

Example:
    >>> import tempfile
    >>> from actwatch.train.synthetic import write_motion_source
    >>> src = write_motion_source(Path(tempfile.mkdtemp()), "a", videos_per_class=1, n_frames=4, group="motion")
    >>> items = discover_videos(src)
    >>> items[0].label, items[0].group, items[0].split
    ('moving_left', 'motion', None)
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from actwatch.capture.video_file import IMAGE_EXTENSIONS, frame_image_files
from actwatch.errors import LayoutError

Layout = Literal["a", "b", "c"]
LAYOUTS: tuple[Layout, ...] = ("a", "b", "c")
SPLITS: tuple[str, ...] = ("train", "val", "test")
VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".m4v", ".wmv", ".flv"})
# HMDB51-style split folders sometimes say "validation" or "valid"; they all mean val.
_SPLIT_ALIASES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


@dataclass(frozen=True, slots=True)
class VideoItem:
    """One labelled source video (a video file or a folder of frames).

    ``video_id`` is derived from the path relative to the source root, so it is stable across runs
    (the resume markers and the splits rely on that) and unique even when two classes hold files of
    the same name.

    Example:
        >>> v = VideoItem.create(Path("/d"), Path("/d/walking/a.mp4"), "walking")
        >>> v.video_id.startswith("walking__a-")
        True
    """

    video_id: str
    source: Path
    label: str
    group: str | None = None
    split: str | None = None  # given by the layout (b, c); None = assigned later by splits.py
    frame_folder: bool = False

    @classmethod
    def create(
        cls,
        root: Path,
        source: Path,
        label: str,
        group: str | None = None,
        split: str | None = None,
        frame_folder: bool = False,
    ) -> VideoItem:
        return cls(video_id_for(root, source), source, label, group, split, frame_folder)


def video_id_for(root: Path, source: Path) -> str:
    """A file-name-safe, stable id: readable stem + a short hash of the relative path."""
    try:
        rel = source.relative_to(root).as_posix()
    except ValueError:
        rel = source.as_posix()
    parts = Path(rel).with_suffix("").parts[-2:]
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", "__".join(parts))[:80]
    digest = hashlib.sha1(rel.encode("utf-8")).hexdigest()[:8]
    return f"{stem}-{digest}"


def _is_video(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS


def _subdirs(p: Path) -> list[Path]:
    return sorted(d for d in p.iterdir() if d.is_dir() and not d.name.startswith("."))


def detect_layout(root: Path) -> Layout:
    """Guess the layout of ``root``; raises :class:`LayoutError` when none fits."""
    if not root.is_dir():
        raise LayoutError(f"source folder {root} does not exist or is not a folder")
    if any((root / f"{s}.csv").is_file() for s in SPLITS):
        return "c"
    split_dirs = [d for d in _subdirs(root) if d.name.lower() in _SPLIT_ALIASES]
    if split_dirs:
        for class_dir in _subdirs(split_dirs[0]):
            if any(frame_image_files(v) for v in _subdirs(class_dir)):
                return "b"
    if _scan_class_folders(root):
        return "a"
    raise LayoutError(
        f"{root} matches no input layout: expected class folders of videos (a), "
        "train|val|test/<class>/<video>/frames (b) or videos + train.csv/val.csv/test.csv (c)"
    )


def discover_videos(root: Path, layout: Layout | Literal["auto"] = "auto") -> list[VideoItem]:
    """All labelled videos of ``root``, sorted by id. ``layout="auto"`` uses :func:`detect_layout`."""
    root = root.resolve()
    chosen = detect_layout(root) if layout == "auto" else layout
    if chosen not in LAYOUTS:
        raise LayoutError(f"unknown layout {layout!r}; use a, b, c or auto")
    if not root.is_dir():
        raise LayoutError(f"source folder {root} does not exist or is not a folder")
    items = {"a": _layout_a, "b": _layout_b, "c": _layout_c}[chosen](root)
    if not items:
        raise LayoutError(f"no labelled videos found in {root} for layout {chosen!r}")
    ids = [v.video_id for v in items]
    if len(set(ids)) != len(ids):
        raise LayoutError(f"{root}: the same video is listed twice (check the CSV files for duplicates)")
    return sorted(items, key=lambda v: v.video_id)


def _scan_class_folders(root: Path) -> list[VideoItem]:
    items: list[VideoItem] = []
    for first in _subdirs(root):
        videos = [p for p in sorted(first.iterdir()) if _is_video(p)]
        if videos:  # first level is a class folder
            items += [VideoItem.create(root, v, first.name) for v in videos]
            continue
        for second in _subdirs(first):  # first level is a group folder, second a class folder
            items += [
                VideoItem.create(root, v, second.name, group=first.name)
                for v in sorted(second.iterdir())
                if _is_video(v)
            ]
    return items


def _layout_a(root: Path) -> list[VideoItem]:
    items = _scan_class_folders(root)
    groups_of: dict[str, set[str | None]] = {}
    for v in items:
        groups_of.setdefault(v.label, set()).add(v.group)
    clash = sorted(label for label, groups in groups_of.items() if len(groups) > 1)
    if clash:
        # Two folders named alike in different groups would silently merge into one class.
        raise LayoutError(f"class name(s) {clash} appear under more than one group folder in {root}; rename them")
    return items


def _layout_b(root: Path) -> list[VideoItem]:
    items: list[VideoItem] = []
    for split_dir in _subdirs(root):
        split = _SPLIT_ALIASES.get(split_dir.name.lower())
        if split is None:
            continue
        for class_dir in _subdirs(split_dir):
            for video_dir in _subdirs(class_dir):
                if frame_image_files(video_dir):
                    items.append(VideoItem.create(root, video_dir, class_dir.name, split=split, frame_folder=True))
    return items


def _layout_c(root: Path) -> list[VideoItem]:
    by_name: dict[str, list[Path]] = {}
    for p in sorted(root.rglob("*")):
        if _is_video(p):
            by_name.setdefault(p.name, []).append(p)
    items: list[VideoItem] = []
    for split in SPLITS:
        csv_path = root / f"{split}.csv"
        if not csv_path.is_file():
            continue
        with csv_path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            fields = [f.strip() for f in reader.fieldnames or []]
            if "video_name" not in fields or "label" not in fields:
                raise LayoutError(f"{csv_path} must have the header 'video_name,label' (found {fields})")
            for line, row in enumerate(reader, start=2):
                row = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
                name, label = row["video_name"], row["label"]
                if not name or not label:
                    raise LayoutError(f"{csv_path}:{line}: empty video_name or label")
                items.append(VideoItem.create(root, _resolve_csv_video(root, name, by_name), label, split=split))
    return items


def _resolve_csv_video(root: Path, name: str, by_name: dict[str, list[Path]]) -> Path:
    direct = root / name
    if direct.is_file():
        return direct
    for candidate in (root / "videos" / name,):
        if candidate.is_file():
            return candidate
    matches = by_name.get(Path(name).name, [])
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise LayoutError(f"CSV video {name!r} matches several files under {root}; give its relative path")
    # A missing file is reported by the extractor (counted as failed), not fatal to the whole run.
    return direct
