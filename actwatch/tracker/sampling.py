"""Decide which frames of a track to sample so that every camera feeds the model at the model's fps.

Sampling is driven by the frames' own timestamps (stream time), not by frame counts, so a window of
``seq_len`` samples spans the same duration whether the camera delivers 10, 25 or 30 frames per second.
Due times sit on a grid (``first + k / fps``) so timestamp jitter does not make the rate drift. A stream
slower than the model's fps contributes every frame; frames are never duplicated to fill the gap (the
window then spans more time).
"""

from __future__ import annotations

# Fraction of a period by which a frame may come early and still be taken: absorbs floating-point
# error (0.1 + 0.2 != 0.3) and tiny clock jitter without letting a 12 fps stream pass every frame.
EARLY_TOLERANCE = 0.05


class FpsSampler:
    """Per-track sampling schedule at ``fps`` samples per second of stream time.

    Example:
        >>> s = FpsSampler(10.0)
        >>> [i for i in range(9) if s.due(i / 30)]  # a 30 fps stream: every 3rd frame
        [0, 3, 6]
    """

    __slots__ = ("_next_due", "last_time", "period", "tolerance")

    def __init__(self, fps: float) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.period = 1.0 / fps
        self.tolerance = self.period * EARLY_TOLERANCE
        self._next_due: float | None = None
        self.last_time: float | None = None

    def due(self, t: float) -> bool:
        """True if the frame at stream time ``t`` should be sampled; advances the schedule when it is."""
        if self.last_time is not None and t < self.last_time:
            self.reset()  # the stream's clock went backwards (a restarted or looped source)
        if self._next_due is not None and t < self._next_due - self.tolerance:
            return False
        # Stay on the grid; restart it here on the first sample or after a gap of more than a period.
        on_grid = self._next_due is not None and t - self._next_due < self.period
        base = self._next_due if on_grid and self._next_due is not None else t
        self._next_due = base + self.period
        self.last_time = t
        return True

    def reset(self) -> None:
        """Forget the schedule: the next frame is sampled."""
        self._next_due = None
        self.last_time = None
