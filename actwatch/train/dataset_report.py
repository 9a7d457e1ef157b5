"""The dataset report ``actwatch extract`` writes beside the dataset: what each class really holds.

Files in ``DATASET_DIR``::

    report.md           per class: videos, failed videos with the reason, sequences, person-seconds (the
                        sequences' time summed over the persons: two people in a 10 s clip make 20),
                        static and short tracks left out, sequences per split; then the warnings
    report.json         the same figures for programs
    contact_sheet.png   one row per class of sample crops (the middle crop of sequences spread over the
                        class's videos), so a user sees at a glance what each class contains

The warnings name classes too small to split (no validation or test sequence: training cannot pick a
checkpoint for them or they are "not evaluable"), and classes whose sequences all come from one video
(the model can learn the video instead of the action).

Example:
    >>> import tempfile
    >>> from actwatch.train.synthetic import write_motion_dataset
    >>> ds = write_motion_dataset(Path(tempfile.mkdtemp()), videos_per_class=1, n_frames=12, size=32)
    >>> report = build_report(ds, markers=[])
    >>> [w.split(":")[0] for w in report.warnings][:2]
    ['moving_left', 'moving_left']
    >>> paths = write_report(report, ds)
    >>> sorted(p.name for p in paths)
    ['contact_sheet.png', 'report.json', 'report.md']
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from actwatch.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text
from actwatch.train.dataset import DatasetIndex, SequenceRecord, VideoMarker

REPORT_MD = "report.md"
REPORT_JSON = "report.json"
CONTACT_SHEET = "contact_sheet.png"
SPLITS = ("train", "val", "test")


@dataclass(frozen=True, slots=True)
class FailedVideo:
    """A source video that gave no sequence, and why."""

    video_id: str
    source: str
    reason: str


@dataclass(frozen=True)
class ClassReport:
    """The figures of one class.

    Example:
        >>> ClassReport("walking", videos=2, sequences=5, seconds=12.5).videos_with_sequences
        0
    """

    label: str
    videos: int = 0
    failed: tuple[FailedVideo, ...] = ()
    sequences: int = 0
    seconds: float = 0.0  # person-seconds: each sequence's time, summed (not the videos' length)
    static_tracks: int = 0  # left out: a box that does not move and crops that do not change
    short_tracks: int = 0  # left out: fewer samples than the minimum
    per_split: dict[str, int] = field(default_factory=dict)
    videos_with_sequences: int = 0


@dataclass(frozen=True)
class DatasetReport:
    """Per-class figures, the dataset-wide settings that matter to a reader, and the warnings."""

    classes: tuple[ClassReport, ...]
    fps: float
    input_size: tuple[int, int]
    min_frames: int | None
    static_left_out: bool
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "fps": self.fps,
            "input_size": list(self.input_size),
            "min_frames": self.min_frames,
            "static_tracks_left_out": self.static_left_out,
            "classes": {c.label: {k: v for k, v in asdict(c).items() if k != "label"} for c in self.classes},
            "warnings": list(self.warnings),
        }

    def format_markdown(self) -> str:
        """``report.md``: the table, the failed videos and the warnings."""
        static = "left out" if self.static_left_out else "kept (--keep-static)"
        lines = [
            "# Dataset report",
            "",
            f"- **sampling**: {self.fps:g} fps, crops {self.input_size[0]}x{self.input_size[1]} (HxW)",
            f"- **shortest sequence kept**: {f'{self.min_frames} samples' if self.min_frames else 'not recorded'}",
            f"- **static tracks**: {static}",
            "",
            "![contact sheet](contact_sheet.png)",
            "",
            "| class | videos | failed | sequences | person-seconds | static left out | short left out | train | val | "
            "test |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for c in self.classes:
            split = [str(c.per_split.get(s, 0)) for s in SPLITS]
            lines.append(
                f"| {c.label} | {c.videos} | {len(c.failed)} | {c.sequences} | {c.seconds:.1f} | "
                f"{c.static_tracks} | {c.short_tracks} | " + " | ".join(split) + " |"
            )
        failed = [(c.label, f) for c in self.classes for f in c.failed]
        if failed:
            lines += ["", "## Failed videos", ""]
            lines += [f"- {label}: `{f.source}`: {f.reason}" for label, f in failed]
        lines += ["", "## Warnings", ""]
        lines += [f"- {w}" for w in self.warnings] or ["- none"]
        return "\n".join(lines) + "\n"


def build_report(
    index: DatasetIndex,
    markers: Sequence[VideoMarker],
    *,
    min_frames: int | None = None,
    static_left_out: bool = True,
) -> DatasetReport:
    """The report of ``index`` and the done ``markers`` of its videos (failed ones included)."""
    by_label: dict[str, list[SequenceRecord]] = {c: [] for c in index.classes}
    for rec in index.sequences:
        by_label.setdefault(rec.label, []).append(rec)
    labels = sorted(set(by_label) | {m.label for m in markers})
    rows = []
    warnings: list[str] = []
    for label in labels:
        recs = by_label.get(label, [])
        mine = [m for m in markers if m.label == label]
        videos = {r.video_id for r in recs}
        per_split = {s: sum(r.split == s for r in recs) for s in SPLITS}
        row = ClassReport(
            label=label,
            videos=max(len(mine), len(videos)),
            failed=tuple(FailedVideo(m.video_id, m.source, m.reason) for m in mine if m.status != "ok"),
            sequences=len(recs),
            seconds=round(sum(r.frames for r in recs) / index.fps, 1),
            static_tracks=sum(m.static_tracks for m in mine),
            short_tracks=sum(m.short_tracks for m in mine),
            per_split=per_split,
            videos_with_sequences=len(videos),
        )
        rows.append(row)
        warnings += class_warnings(row)
    return DatasetReport(tuple(rows), index.fps, index.input_size, min_frames, static_left_out, tuple(warnings))


def class_warnings(row: ClassReport) -> list[str]:
    """What a user must know about one class before training on it.

    Example:
        >>> class_warnings(ClassReport("cycling", videos=4, sequences=1, videos_with_sequences=1,
        ...                            per_split={"train": 1, "val": 0, "test": 0}))[0].split(";")[0]
        'cycling: 1 sequence(s) from 1 of 4 video(s) (3 failed or left out)'
    """
    out = []
    if row.sequences == 0:
        return [f"{row.label}: no sequence at all; every video failed (see 'Failed videos')"]
    missing = [s for s in SPLITS if row.per_split.get(s, 0) == 0]
    if missing:
        gone = row.videos - row.videos_with_sequences
        lost = f" ({gone} failed or left out)" if gone > 0 else ""
        out.append(
            f"{row.label}: {row.sequences} sequence(s) from {row.videos_with_sequences} of {row.videos} video(s)"
            f"{lost}; too few to split: no {'/'.join(missing)} sequence (a class without validation sequences "
            "cannot guide training, one without test sequences is not evaluable); add videos of this class"
        )
    if row.videos_with_sequences == 1:
        out.append(
            f"{row.label}: all {row.sequences} sequence(s) come from one video: the model can learn that video "
            "(its background, lighting, people) instead of the action; add videos of other scenes"
        )
    return out


def contact_sheet(index: DatasetIndex, *, per_class: int = 8, thumb: int = 96, label_width: int = 160) -> np.ndarray:
    """A BGR image: one row per class of ``per_class`` sample crops (the middle crop of sequences spread
    evenly over the class's sequences sorted by video), each captioned with its video and track.

    Example:
        >>> import tempfile
        >>> from actwatch.train.synthetic import write_motion_dataset
        >>> ds = write_motion_dataset(Path(tempfile.mkdtemp()), videos_per_class=3, n_frames=8, size=32)
        >>> contact_sheet(ds, per_class=4, thumb=48).shape
        (128, 368, 3)
    """
    caption = 16
    row_h = thumb + caption
    h, w = index.input_size
    tw = max(1, round(thumb * w / h))
    sheet = np.full((row_h * max(1, len(index.classes)), label_width + per_class * (tw + 4), 3), 255, np.uint8)
    for r, label in enumerate(index.classes):
        recs = sorted((s for s in index.sequences if s.label == label), key=lambda s: (s.video_id, s.seq_id))
        y = r * row_h
        cv2.putText(sheet, label[:18], (6, y + row_h // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        count = f"{len(recs)} seq."
        cv2.putText(sheet, count, (6, y + row_h // 2 + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (90, 90, 90), 1, cv2.LINE_AA)
        if not recs:
            continue
        picks = sorted({int(i) for i in np.linspace(0, len(recs) - 1, min(per_class, len(recs)))})
        for c, i in enumerate(picks):
            rec = recs[i]
            crops = index.read_sequence(rec)
            img = cv2.resize(crops[len(crops) // 2], (tw, thumb), interpolation=cv2.INTER_AREA)
            x = label_width + c * (tw + 4)
            sheet[y : y + thumb, x : x + tw] = img
            name = rec.seq_id[-14:]
            cv2.putText(sheet, name, (x, y + thumb + 11), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (60, 60, 60), 1, cv2.LINE_AA)
    return sheet


def write_report(report: DatasetReport, index: DatasetIndex, *, per_class: int = 8) -> list[Path]:
    """Write ``report.md``, ``report.json`` and ``contact_sheet.png`` into the dataset folder.

    A resumed extraction that changed nothing leaves the three files as they were (``report.json``
    holds the sequence ids the contact sheet was drawn from).
    """
    root = index.root
    paths = [root / REPORT_MD, root / REPORT_JSON, root / CONTACT_SHEET]
    ids = hashlib.sha256("\n".join(sorted(s.seq_id for s in index.sequences)).encode()).hexdigest()
    content = {**report.to_json(), "sequence_ids_sha256": ids, "contact_sheet_per_class": per_class}
    changed = atomic_write_json(root / REPORT_JSON, content, only_if_changed=True)
    if not changed and all(p.is_file() for p in paths):
        return paths
    ok, png = cv2.imencode(".png", contact_sheet(index, per_class=per_class))
    if not ok:
        raise RuntimeError("OpenCV could not encode the contact sheet as PNG")
    atomic_write_bytes(root / CONTACT_SHEET, png.tobytes())
    atomic_write_text(root / REPORT_MD, report.format_markdown())
    return paths
