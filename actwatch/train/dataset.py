"""The on-disk dataset that ``actwatch extract`` writes and ``actwatch train``/``evaluate`` read.

Layout of ``DATASET_DIR``::

    extraction.json                      settings every video was extracted with (checked on resume)
    videos/<video_id>.json               per-video done marker, written atomically after its sequences
    sequences/<video_id>/t<track>.npy    one person sequence: (T, H, W, 3) uint8 BGR at the dataset fps
    sequences/<video_id>/t<track>/       ... or, with --png, one PNG per frame (000000.png, ...)
    dataset.json                         the index: classes, input size, fps and every sequence with its
                                         label, group, split, frame count, track, segment and time span
                                         (rebuilt from the markers)

A person track stays typed from extraction to the index: the tracker's
:class:`~actwatch.tracker.offline.TrackSequence` is stored as a :class:`StoredSequence` (in the video's
marker), which becomes a :class:`SequenceRecord` (a row of the index). Indexes written before tracks
kept their segment and time span still load (those fields are then 0 and None).

Example:
    >>> import tempfile
    >>> from actwatch.train.synthetic import write_motion_dataset
    >>> root = write_motion_dataset(Path(tempfile.mkdtemp()), videos_per_class=3, n_frames=12, size=32).root
    >>> ds = load_dataset(root)
    >>> rec = ds.split("train")[0]
    >>> ds.read_sequence(rec).shape, (rec.track_id, rec.segment, rec.start_time, rec.end_time)
    ((12, 32, 32, 3), (0, 0, 0.0, 1.1))
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Self

import cv2
import numpy as np

from actwatch.errors import DatasetError
from actwatch.fileio import atomic_path, atomic_write_bytes, atomic_write_json
from actwatch.tracker.offline import TrackSequence
from actwatch.train.splits import assign_splits, check_no_leakage

FORMAT = "actwatch-dataset"
VERSION = 1


def sequence_name(track_id: int, segment: int) -> str:
    """The file stem and seq-id suffix of a track's segment: ``t3`` (segment 0), ``t3-1``, ...

    Example:
        >>> sequence_name(3, 0), sequence_name(3, 2)
        ('t3', 't3-2')
    """
    return f"t{track_id}" if segment == 0 else f"t{track_id}-{segment}"


@dataclass(frozen=True, slots=True)
class StoredSequence:
    """One sequence as stored for its video (in the done marker): where, how long, which track, when.

    Example:
        >>> s = StoredSequence("v1/t3", "sequences/v1/t3.npy", 40, track_id=3, start_time=1.0, end_time=4.9)
        >>> s.segment, StoredSequence.from_dict(asdict(s)) == s
        (0, True)
    """

    seq_id: str
    path: str  # relative to the dataset root
    frames: int
    track_id: int
    segment: int = 0  # 0, 1, ... when a long track was split
    start_time: float | None = None  # stream seconds of the first and last sample (None: older datasets)
    end_time: float | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        """From its JSON form; rows written before segment and time span were kept get the defaults."""
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass(frozen=True, slots=True, kw_only=True)
class SequenceRecord(StoredSequence):
    """One row of the index: a stored sequence with its video's id, label, group, split and source.

    Example:
        >>> r = SequenceRecord(seq_id="v1/t3", path="sequences/v1/t3.npy", frames=40, track_id=3, video_id="v1",
        ...                    label="walking", group=None, split="train", source="a.mp4")
        >>> r.frames, r.segment, r.start_time
        (40, 0, None)
    """

    video_id: str
    label: str
    group: str | None
    split: str
    source: str


@dataclass(frozen=True, slots=True)
class VideoMarker:
    """The done marker of one source video; ``status`` is ``ok`` or ``failed`` (with a ``reason``).

    Example:
        >>> VideoMarker("v1", "a.mp4", "walking", None, None, "failed", "too short").sequences
        ()
    """

    video_id: str
    source: str
    label: str
    group: str | None
    given_split: str | None
    status: str
    reason: str = ""
    frames: int = 0  # frames sampled at the dataset fps
    persons: int = 0  # tracks seen (capped at max persons)
    sequences: tuple[StoredSequence, ...] = ()
    static_tracks: int = 0  # tracks left out as static (a box that does not move, crops that do not change)
    short_tracks: int = 0  # tracks left out as shorter than the minimum

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VideoMarker:
        values = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        values["sequences"] = tuple(StoredSequence.from_dict(s) for s in d.get("sequences", ()))
        return cls(**values)


@dataclass(frozen=True, slots=True)
class DatasetIndex:
    """A loaded ``dataset.json``: what training and evaluation read.

    Example:
        >>> import tempfile
        >>> from actwatch.train.synthetic import write_motion_dataset
        >>> ds = write_motion_dataset(Path(tempfile.mkdtemp()), videos_per_class=4, n_frames=8, size=32)
        >>> ds.classes, len(ds.sequences)
        (['moving_left', 'moving_right'], 8)
    """

    root: Path
    classes: list[str]
    input_size: tuple[int, int]  # (H, W)
    fps: float
    sequences: list[SequenceRecord]
    meta: dict[str, Any] = field(default_factory=dict)

    def split(self, name: str) -> list[SequenceRecord]:
        return [s for s in self.sequences if s.split == name]

    def label_index(self, label: str) -> int:
        return self.classes.index(label)

    def read_sequence(self, rec: SequenceRecord) -> np.ndarray:
        """The frames of ``rec`` as (T, H, W, 3) uint8 BGR."""
        return read_sequence_file(self.root / rec.path)

    def fingerprint(self) -> str:
        """Changes when any sequence file is added, removed or rewritten (used to key feature caches)."""
        h = hashlib.sha256()
        h.update(json.dumps([self.input_size, self.fps]).encode())
        for s in sorted(self.sequences, key=lambda r: r.seq_id):
            p = self.root / s.path
            st = p.stat()
            h.update(f"{s.seq_id}|{s.frames}|{st.st_size}|{st.st_mtime_ns}".encode())
        return h.hexdigest()


def read_sequence_file(path: Path) -> np.ndarray:
    if path.suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DatasetError(f"sequence file {path} is unreadable ({exc}); re-run extraction") from exc
    elif path.is_dir():
        frames = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in sorted(path.glob("*.png"))]
        good = [f for f in frames if f is not None]
        if not good or len(good) != len(frames):
            raise DatasetError(f"PNG sequence {path} is empty or has unreadable frames; re-run extraction")
        arr = np.stack(good)
    else:
        raise DatasetError(f"sequence {path} is missing; re-run extraction")
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise DatasetError(f"sequence {path} has shape {arr.shape} {arr.dtype}, expected (T, H, W, 3) uint8")
    return arr


class DatasetWriter:
    """Writes sequences and done markers into ``root``; :meth:`finalize` builds ``dataset.json``.

    ``settings`` (input size, fps, whole-frame, storage, ...) are stored in ``extraction.json`` on the
    first run; resuming with different settings raises :class:`DatasetError` instead of mixing data.

    Example:
        >>> import tempfile
        >>> from actwatch.train.extract import whole_frame_sequence
        >>> w = DatasetWriter(Path(tempfile.mkdtemp()), {"input_size": [64, 64], "fps": 10.0})
        >>> crops = np.zeros((8, 64, 64, 3), np.uint8)
        >>> w.write_sequence("v1", whole_frame_sequence(crops, np.arange(8) / 10.0, (64, 64))).path
        'sequences/v1/t0.npy'
    """

    def __init__(self, root: Path, settings: dict[str, Any], png: bool = False) -> None:
        self.root = root
        self.png = png
        self.settings = {**settings, "storage": "png" if png else "npy"}
        root.mkdir(parents=True, exist_ok=True)
        settings_path = root / "extraction.json"
        if settings_path.exists():
            old = json.loads(settings_path.read_text())
            if old != json.loads(json.dumps(self.settings)):
                diff = {k: (old.get(k), v) for k, v in self.settings.items() if old.get(k) != v}
                raise DatasetError(
                    f"{root} was extracted with other settings {diff} (old, new); use a new --out folder "
                    "or the same settings to resume"
                )
        else:
            atomic_write_json(settings_path, self.settings)

    def marker_path(self, video_id: str) -> Path:
        return self.root / "videos" / f"{video_id}.json"

    def is_done(self, video_id: str) -> bool:
        return self.marker_path(video_id).is_file()

    def read_marker(self, video_id: str) -> VideoMarker:
        return VideoMarker.from_dict(json.loads(self.marker_path(video_id).read_text()))

    def write_sequence(self, video_id: str, seq: TrackSequence) -> StoredSequence:
        """Store the crops of ``seq`` ((T, H, W, 3) uint8 BGR) atomically; returns what the marker keeps."""
        name = sequence_name(seq.track_id, seq.segment)
        rel = Path("sequences") / video_id / name
        if self.png:
            with atomic_path(self.root / rel) as tmp:
                tmp.mkdir()
                for i, frame in enumerate(seq.crops):
                    cv2.imwrite(str(tmp / f"{i:06d}.png"), frame)
        else:
            rel = rel.with_suffix(".npy")
            buf = io.BytesIO()
            np.save(buf, np.ascontiguousarray(seq.crops, dtype=np.uint8), allow_pickle=False)
            atomic_write_bytes(self.root / rel, buf.getvalue())
        return StoredSequence(
            seq_id=f"{video_id}/{name}",
            path=rel.as_posix(),
            frames=seq.length,
            track_id=seq.track_id,
            segment=seq.segment,
            start_time=seq.first_time,
            end_time=seq.last_time,
        )

    def write_marker(self, marker: VideoMarker) -> None:
        atomic_write_json(self.marker_path(marker.video_id), asdict(marker))

    def markers(self) -> list[VideoMarker]:
        folder = self.root / "videos"
        if not folder.is_dir():
            return []
        return [VideoMarker.from_dict(json.loads(p.read_text())) for p in sorted(folder.glob("*.json"))]

    def finalize(self, *, val_ratio: float, test_ratio: float, seed: int) -> DatasetIndex:
        """Assign leakage-free splits over all finished videos and write ``dataset.json``."""
        markers = [m for m in self.markers() if m.status == "ok" and m.sequences]
        if not markers:
            raise DatasetError(f"no sequences were extracted into {self.root}; see the warnings above")
        split_of = assign_splits(
            {m.video_id: (m.label, m.given_split) for m in markers},
            val_ratio=val_ratio,
            test_ratio=test_ratio,
            seed=seed,
        )
        records = [
            SequenceRecord(
                **asdict(s),
                video_id=m.video_id,
                label=m.label,
                group=m.group,
                split=split_of[m.video_id],
                source=m.source,
            )
            for m in markers
            for s in m.sequences
        ]
        classes = sorted({r.label for r in records})
        groups = {r.label: r.group for r in records}
        h, w = self.settings["input_size"]
        index = {
            "format": FORMAT,
            "version": VERSION,
            "classes": classes,
            "class_groups": groups,
            "input_size": [int(h), int(w)],
            "fps": float(self.settings["fps"]),
            "split_seed": seed,
            "split_ratios": {"val": val_ratio, "test": test_ratio},
            "extraction": self.settings,
            "sequences": [asdict(r) for r in records],
        }
        # Unchanged on a resumed run that found nothing new: the index keeps its mtime.
        atomic_write_json(self.root / "dataset.json", index, only_if_changed=True)
        return load_dataset(self.root)


def load_dataset(root: Path) -> DatasetIndex:
    """Read ``root/dataset.json``; raises :class:`DatasetError` when it is missing or inconsistent."""
    path = root / "dataset.json"
    if not path.is_file():
        raise DatasetError(f"{path} not found: run `actwatch extract SRC --out {root}` first")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path} is not valid JSON ({exc}); re-run extraction") from exc
    if raw.get("format") != FORMAT or raw.get("version") != VERSION:
        raise DatasetError(f"{path} is not an actwatch dataset (format {raw.get('format')!r})")
    records = [SequenceRecord.from_dict(s) for s in raw["sequences"]]
    check_no_leakage({r.seq_id: r.split for r in records}, {r.seq_id: r.video_id for r in records})
    unknown = {r.label for r in records} - set(raw["classes"])
    if unknown:
        raise DatasetError(f"{path}: sequences with labels {sorted(unknown)} missing from 'classes'")
    h, w = raw["input_size"]
    return DatasetIndex(
        root=root,
        classes=list(raw["classes"]),
        input_size=(int(h), int(w)),
        fps=float(raw["fps"]),
        sequences=records,
        meta={k: v for k, v in raw.items() if k not in ("sequences", "classes", "input_size", "fps")},
    )
