"""How a serving network's calls are batched on a GPU: padding, and one session per batch size.

ONNX Runtime's CUDA convolutions keep the cuDNN plans of one input shape per node and session
(``Conv::UpdateState``): a call whose batch differs from the previous call's builds them again, 324 ms
(median; 526 ms at most) for the action model's encoder on an H200 against 1.5 ms for a call that
repeats its size (``benchmarks/encoder_probe.py``). Padding bounds the shapes, and a session per padded
size (:class:`BatchSessions`; not under TensorRT, whose engines plan every batch of their profile once)
keeps each size's plans: ``pow2`` rounds each call up to a power of two,
``fixed`` sends every call at one size (the encoder's at ``model.max_batch``, the detector's at the
number of cameras; the head still at powers of two). ``auto`` is ``pow2`` on a GPU: at 64 cameras over
8 processes on an H200 it processed 831-846 frames/s (p95 461-483 ms) against fixed's 634-787 (p95
506-711 ms), for 58.4 GB of GPU memory against 34.8 (README, Benchmarks). The CPU provider prepares
nothing per shape: there ``auto`` pads nothing.

Example:
    >>> [resolve_padding("auto", [p]) for p in ("CUDAExecutionProvider", "CPUExecutionProvider")]
    ['pow2', 'off']
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, Literal, TypeVar

import numpy as np

from actwatch.onnx_choices import TENSORRT, BatchPadding, canonical_provider, choices, worded
from actwatch.onnx_providers import runs_on_gpu

Padding = Literal["fixed", "pow2", "off"]
Session = TypeVar("Session")


def resolve_padding(setting: str, providers: Sequence[str], *, key: str = "batch_padding") -> Padding:
    """``setting`` (auto, fixed, pow2, off) for a session on ``providers``: auto is pow2 on a GPU
    provider (CUDA, TensorRT), off elsewhere. ``key`` names the setting in the error for another value."""
    if setting not in choices(BatchPadding):
        raise ValueError(f"{key} must be {worded(BatchPadding)}, not {setting!r}")
    if setting == "auto":
        return "pow2" if runs_on_gpu(providers) else "off"
    return setting  # type: ignore[return-value]  # one of the three others, checked above


def session_per_size(padding: Padding, providers: Sequence[str]) -> bool:
    """Whether padded calls get a session per batch size on ``providers`` (active, first = where the graph
    runs): yes with padding, except under TensorRT, whose engine serves every batch of its profile without
    planning again, and which would build one engine per session (minutes each without an engine cache).

    Example:
        >>> [session_per_size("pow2", [p]) for p in ("CUDAExecutionProvider", "TensorrtExecutionProvider")]
        [True, False]
        >>> session_per_size("off", ["CUDAExecutionProvider"])
        False
    """
    return padding != "off" and not (providers and canonical_provider(providers[0])[0] == TENSORRT)


def pad_to_power_of_two(batch: np.ndarray, limit: int | None = None) -> np.ndarray:
    """``batch`` with zero rows appended up to the next power of two (at most ``limit`` rows): a GPU
    provider prepares its kernels once per input shape, so a few padded sizes cost far less than every
    size. The caller drops the padding rows' results.

    Example:
        >>> [len(pad_to_power_of_two(np.zeros((n, 2)), limit=6)) for n in (1, 3, 4, 5, 6)]
        [1, 4, 4, 6, 6]
    """
    n = len(batch)
    size = 1 << n.bit_length() if n & (n - 1) else n  # n itself where it is a power of two (or 0)
    return pad_rows(batch, size if limit is None else min(size, limit))


def pad_rows(batch: np.ndarray, size: int) -> np.ndarray:
    """``batch`` with zero rows appended up to ``size`` rows (as it is when it has that many or more).

    Example:
        >>> [len(pad_rows(np.zeros((n, 2)), 4)) for n in (1, 4, 5)]
        [4, 4, 5]
    """
    n = len(batch)
    if size <= n:
        return batch
    return np.concatenate([batch, np.zeros((size - n, *batch.shape[1:]), batch.dtype)])


def padded_batch_sizes(largest: int, limit: int | None = None) -> list[int]:
    """Every size :func:`pad_to_power_of_two` makes of batches of up to ``largest`` rows (what a warm-up
    runs once each).

    Example:
        >>> padded_batch_sizes(5), padded_batch_sizes(48, limit=48), padded_batch_sizes(1)
        ([1, 2, 4, 8], [1, 2, 4, 8, 16, 32, 48], [1])
    """
    sizes = [1]
    while sizes[-1] < largest:
        size = sizes[-1] * 2
        sizes.append(size if limit is None else min(size, limit))
    return sizes


def run_padded(
    x: np.ndarray, run: Callable[[np.ndarray], np.ndarray], *, chunk: int | None, padding: Padding
) -> np.ndarray:
    """``run`` over the rows of ``x`` (not empty) in calls of at most ``chunk`` rows (``None``: one call),
    each padded as ``padding`` says (fixed: to ``chunk`` rows; pow2: to the next power of two, at most
    ``chunk``); the padding rows' results are dropped.

    Example:
        >>> seen = []
        >>> def double(part): seen.append(len(part)); return part * 2
        >>> run_padded(np.arange(5.0)[:, None], double, chunk=4, padding="fixed").ravel().tolist(), seen
        ([0.0, 2.0, 4.0, 6.0, 8.0], [4, 4])
        >>> _ = run_padded(np.arange(5.0)[:, None], double, chunk=None, padding="pow2"); seen[2:]
        [8]
    """
    step = chunk or len(x)
    parts = []
    for i in range(0, len(x), step):
        part = x[i : i + step]
        n = len(part)
        if padding == "fixed":
            part = pad_rows(part, step)
        elif padding == "pow2":
            part = pad_to_power_of_two(part, limit=chunk)
        parts.append(run(part)[:n])
    return np.concatenate(parts)


class BatchSessions(Generic[Session]):
    """A graph's sessions, one per batch size its calls have (``per_size``) or one for all, each made by
    ``make`` on first use (``first``: an already made one, taken by the first size asked for). Safe for
    several threads: a size is made once.

    Example:
        >>> made = []
        >>> sessions = BatchSessions(lambda: made.append(len(made)) or f"session {len(made)}", per_size=True)
        >>> [sessions.get(n) for n in (4, 8, 4)], len(sessions)
        (['session 1', 'session 2', 'session 1'], 2)
        >>> one = BatchSessions(lambda: "never made", per_size=False, first="the session")
        >>> [one.get(n) for n in (4, 8)], len(one)
        (['the session', 'the session'], 1)
    """

    def __init__(self, make: Callable[[], Session], *, per_size: bool, first: Session | None = None) -> None:
        self._make = make
        self.per_size = per_size
        self._first = first
        self._by_size: dict[int, Session] = {}
        self._lock = threading.Lock()

    def get(self, batch: int) -> Session:
        """The session for calls of ``batch`` rows."""
        key = batch if self.per_size else 0
        session = self._by_size.get(key)
        if session is None:
            with self._lock:
                session = self._by_size.get(key)
                if session is None:
                    session, self._first = (self._first, None) if self._first is not None else (self._make(), None)
                    self._by_size[key] = session
        return session

    def __len__(self) -> int:
        return len(self._by_size)
