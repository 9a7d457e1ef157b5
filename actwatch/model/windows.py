"""Which samples of a sequence make one model window: the one ``window_indices`` of the package.

Training cuts one window per sequence (a random offset, or the centred one for evaluation);
``actwatch predict`` slides windows along a whole track (integer offsets). A sequence shorter than the
window is filled by ``short_policy``:

* ``loop``: the sequence is repeated (``0 1 2 0 1``);
* ``pad``: its last sample is repeated at the end (``0 1 2 2 2``);
* ``pad_front``: its first sample is repeated at the front (``0 0 0 1 2``): the model sees the person
  standing still before the clip starts, and the newest sample stays last.

Example:
    >>> window_indices(20, 8, offset="center").tolist()
    [6, 7, 8, 9, 10, 11, 12, 13]
    >>> window_indices(10, 4, offset=6).tolist()
    [6, 7, 8, 9]
    >>> window_indices(3, 5, short_policy="loop").tolist()
    [0, 1, 2, 0, 1]
    >>> window_indices(3, 5, short_policy="pad").tolist()
    [0, 1, 2, 2, 2]
    >>> window_indices(3, 5, short_policy="pad_front").tolist()
    [0, 0, 0, 1, 2]
"""

from __future__ import annotations

from typing import Literal

import numpy as np

ShortPolicy = Literal["loop", "pad", "pad_front"]


def window_indices(
    n: int,
    seq_len: int,
    *,
    offset: int | Literal["random", "center"] = 0,
    short_policy: ShortPolicy = "loop",
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Sample indices ``(seq_len,)`` of one window of a sequence of ``n`` samples.

    ``offset`` is the first sample of the window: an index, ``"center"`` or ``"random"`` (drawn from
    ``rng``). A sequence shorter than ``seq_len`` has one window, filled by ``short_policy``.
    """
    if n < 1:
        raise ValueError("a sequence needs at least one frame")
    if seq_len < 1:
        raise ValueError("seq_len must be >= 1")
    steps = np.arange(seq_len)
    if n < seq_len:
        if short_policy == "loop":
            return steps % n
        if short_policy == "pad":
            return np.minimum(steps, n - 1)
        return np.maximum(steps - (seq_len - n), 0)
    if offset == "random":
        start = int((rng or np.random.default_rng()).integers(0, n - seq_len + 1))
    elif offset == "center":
        start = (n - seq_len) // 2
    else:
        if not 0 <= offset <= n - seq_len:
            raise ValueError(f"offset {offset} is outside 0..{n - seq_len} for {n} samples and seq_len {seq_len}")
        start = offset
    return start + steps


def min_window_samples(seq_len: int) -> int:
    """The fewest samples a track needs to be classified (``predict``'s default ``--min-samples``):
    half a window; shorter tracks are too short. Extraction keeps no shorter sequence than this for
    the default window, so what training learns from, ``predict`` accepts.

    Example:
        >>> min_window_samples(30), min_window_samples(8), min_window_samples(1)
        (15, 4, 1)
    """
    return max(1, seq_len // 2)
