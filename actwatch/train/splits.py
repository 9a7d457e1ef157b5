"""Leakage-free train/val/test splits: whole source videos go to one split, stratified by class.

All sequences (persons) of one source video share its split, so a person seen in training never
reappears in validation or test. Splits given by the layout (b, c) are kept; a missing val split is
carved out of train the same way. The result depends only on the video ids, the ratios and the seed.

Example:
    >>> videos = {f"v{i}": ("walk" if i % 2 else "run", None) for i in range(20)}
    >>> s = assign_splits(videos, val_ratio=0.2, test_ratio=0.2, seed=0)
    >>> sorted(set(s.values()))
    ['test', 'train', 'val']
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Mapping

import numpy as np

from actwatch.errors import ConfigError, DatasetError

log = logging.getLogger(__name__)


def _stable_seed(seed: int, label: str) -> int:
    # Per-class streams keep one class's split independent of which other classes exist.
    return int.from_bytes(hashlib.sha256(f"{seed}:{label}".encode()).digest()[:8], "little")


def _carve(ids: list[str], ratios: Mapping[str, float], seed: int, label: str) -> dict[str, str]:
    """Split one class's video ids: shuffled deterministically, at least one video per asked split."""
    order = sorted(ids)
    np.random.default_rng(_stable_seed(seed, label)).shuffle(order)
    n = len(order)
    wanted = {name: r for name, r in ratios.items() if r > 0}
    counts = {name: round(n * r) for name, r in wanted.items()}
    if n >= len(wanted) + 1:
        counts = {name: max(1, c) for name, c in counts.items()}
    elif wanted:
        log.warning("class %r has only %d video(s): all of them go to train", label, n)
        counts = {name: 0 for name in wanted}
    while sum(counts.values()) >= n and counts:  # keep at least one training video
        biggest = max(counts, key=lambda k: counts[k])
        if counts[biggest] == 0:
            break
        counts[biggest] -= 1
    out: dict[str, str] = {}
    pos = 0
    for name in sorted(counts):  # "test" before "val": fixed order for determinism
        for vid in order[pos : pos + counts[name]]:
            out[vid] = name
        pos += counts[name]
    for vid in order[pos:]:
        out[vid] = "train"
    return out


def assign_splits(
    videos: Mapping[str, tuple[str, str | None]],
    *,
    val_ratio: float = 0.15,
    test_ratio: float = 0.15,
    seed: int = 0,
) -> dict[str, str]:
    """Map each video id to ``train``/``val``/``test``.

    ``videos`` maps a video id to ``(label, given_split)``; ``given_split`` is ``None`` when the layout
    gave none. Given splits are kept. Videos without one are split per class; when some videos have
    given splits but no ``val`` exists, ``val_ratio`` of the given train videos become val.
    """
    if not (0 <= val_ratio < 1 and 0 <= test_ratio < 1 and val_ratio + test_ratio < 1):
        raise ConfigError(f"split ratios must be in [0, 1) and sum below 1 (val {val_ratio}, test {test_ratio})")
    result: dict[str, str] = {}
    free: dict[str, list[str]] = defaultdict(list)
    given_train: dict[str, list[str]] = defaultdict(list)
    for vid, (label, split) in videos.items():
        if split is None:
            free[label].append(vid)
        else:
            result[vid] = split
            if split == "train":
                given_train[label].append(vid)
    for label, ids in free.items():
        result.update(_carve(ids, {"val": val_ratio, "test": test_ratio}, seed, label))
    if given_train and "val" not in result.values() and val_ratio > 0:
        for label, ids in given_train.items():
            result.update(_carve(ids, {"val": val_ratio}, seed, label))
    return result


def check_no_leakage(split_of_sequence: Mapping[str, str], video_of_sequence: Mapping[str, str]) -> None:
    """Raise when sequences of one source video sit in two splits (a broken or hand-edited index)."""
    seen: dict[str, str] = {}
    for seq, split in split_of_sequence.items():
        vid = video_of_sequence[seq]
        if seen.setdefault(vid, split) != split:
            raise DatasetError(f"video {vid} has sequences in both {seen[vid]!r} and {split!r}: re-run extraction")
