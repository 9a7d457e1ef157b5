"""Synthetic clips whose label is carried by motion alone, for tests, benchmarks and smoke runs.

The edge of a large dark object (a shade) slides across a random, smooth background, to the left
(class ``moving_left``) or to the right (``moving_right``). Every frame of either class is drawn from
the same distribution (the edge positions of a clip are symmetric around a random centre), so single
frames — or the frames of a clip in shuffled order — carry no label information; only their order does.

A shade rather than a small moving blob: a randomly initialised CNN with global average pooling is
nearly translation-invariant, so it barely sees *where* a blob is, but every random channel sees *how
much* of the frame is dark. The direction is then whether the dark area grows or shrinks.

Example:
    >>> rng = np.random.default_rng(0)
    >>> motion_clip(rng, +1, n_frames=4, size=32).shape
    (4, 32, 32, 3)
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

from actwatch.capture.video_file import write_video
from actwatch.train.dataset import DatasetIndex, DatasetWriter, VideoMarker
from actwatch.train.extract import whole_frame_sequence

MOTION_CLASSES = ("moving_left", "moving_right")


def motion_clip(rng: np.random.Generator, direction: int, *, n_frames: int = 16, size: int = 48) -> np.ndarray:
    """One clip ``(n_frames, size, size, 3)`` uint8 BGR; ``direction`` is -1 (left) or +1 (right)."""
    if direction not in (-1, 1):
        raise ValueError("direction must be -1 or +1")
    s = float(size)
    base = rng.uniform(110, 220)
    texture = base + rng.uniform(-30, 30, (4, 4, 3)).astype(np.float32)
    background = cv2.resize(texture, (size, size), interpolation=cv2.INTER_CUBIC)
    speed = s * rng.uniform(0.04, 0.07)  # pixels per frame
    centre = rng.uniform(0.3 * s, 0.7 * s)  # independent of the class: same frame distribution
    shade = rng.uniform(0, 50, 3).astype(np.float32)
    columns = np.arange(size, dtype=np.float32)
    frames = np.empty((n_frames, size, size, 3), np.uint8)
    for t in range(n_frames):
        edge = centre + direction * speed * (t - (n_frames - 1) / 2)
        # Coverage of each pixel column by the shade, fractional at the edge: sub-pixel motion stays smooth.
        alpha = np.clip(edge - columns, 0.0, 1.0)[None, :, None]
        img = background * (1 - 0.7 * alpha) + shade * 0.3 * alpha
        img = img + rng.normal(0.0, 3.0, img.shape).astype(np.float32)
        frames[t] = np.clip(img, 0, 255).astype(np.uint8)
    return frames


def write_motion_dataset(
    out_dir: Path,
    *,
    videos_per_class: int = 40,
    n_frames: int = 16,
    size: int = 48,
    fps: float = 10.0,
    seed: int = 0,
    val_ratio: float = 0.3,
    test_ratio: float = 0.2,
) -> DatasetIndex:
    """A ready dataset (as ``actwatch extract --whole-frame`` would write it) of motion clips."""
    rng = np.random.default_rng(seed)
    writer = DatasetWriter(out_dir, {"input_size": [size, size], "fps": fps, "whole_frame": True, "frames_fps": fps})
    for i in range(videos_per_class):
        for label, direction in zip(MOTION_CLASSES, (-1, 1), strict=True):
            video_id = f"{label}_{i:04d}"
            clip = motion_clip(rng, direction, n_frames=n_frames, size=size)
            seq = whole_frame_sequence(clip, np.arange(n_frames) / fps, (size, size))
            stored = writer.write_sequence(video_id, seq)
            writer.write_marker(
                VideoMarker(video_id, f"synthetic:{video_id}", label, None, None, "ok", "", n_frames, 1, (stored,))
            )
    return writer.finalize(val_ratio=val_ratio, test_ratio=test_ratio, seed=seed)


def write_frame_folder(folder: Path, frames: np.ndarray) -> Path:
    """Write frames as ``frame_0001.jpg``, ``frame_0002.jpg``, ... (the HMDB51 layout)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames, start=1):
        cv2.imwrite(str(folder / f"frame_{i:04d}.jpg"), frame)
    return folder


def write_motion_source(
    root: Path,
    layout: str,
    *,
    videos_per_class: int = 3,
    n_frames: int = 16,
    size: int = 48,
    fps: float = 10.0,
    seed: int = 0,
    group: str | None = None,
) -> Path:
    """A source folder of motion clips in ``layout`` ``a`` (class folders, in ``group`` if given),
    ``b`` (train/val/test frame folders) or ``c`` (videos + CSV split files)."""
    rng = np.random.default_rng(seed)
    splits = ["train", "val", "test"]
    rows: dict[str, list[tuple[str, str]]] = {s: [] for s in splits}
    for i in range(videos_per_class):
        split = splits[i % 3]
        for label, direction in zip(MOTION_CLASSES, (-1, 1), strict=True):
            clip = motion_clip(rng, direction, n_frames=n_frames, size=size)
            name = f"{label}_{i:03d}"
            if layout == "a":
                folder = root / group / label if group else root / label
                write_video(folder / f"{name}.avi", clip, fps)
            elif layout == "b":
                write_frame_folder(root / split / label / name, clip)
            elif layout == "c":
                write_video(root / "videos" / f"{name}.avi", clip, fps)
                rows[split].append((f"{name}.avi", label))
            else:
                raise ValueError(f"unknown layout {layout!r}")
    if layout == "c":
        for split, items in rows.items():
            with (root / f"{split}.csv").open("w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["video_name", "label"])
                w.writerows(items)
    return root
