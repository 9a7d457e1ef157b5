"""Decide which frames of a track to sample so that every camera feeds the model at the model's fps.

Sampling is driven by the frames' own timestamps (stream time), not by frame counts, so a window of
``seq_len`` samples spans the same duration whether the camera delivers 10, 25 or 30 frames per second.
Due times sit on a grid (``first + k / fps``) so timestamp jitter does not make the rate drift. A frame
that comes a whole frame interval (the smallest gap between frames offered so far) or more after its due
time means the track was missed at the grid point: the grid restarts there, so the next sample is a full
period later, not one frame. A stream slower than the model's fps contributes every frame; frames are
never duplicated to fill the gap (the window then spans more time).
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
        >>> s = FpsSampler(5.0)  # a 10 fps stream; the track is missed at 0.4 s
        >>> [t for t in (0.0, 0.1, 0.2, 0.3, 0.5, 0.6, 0.7) if s.due(t)]
        [0.0, 0.2, 0.5, 0.7]
    """

    __slots__ = ("_frame_interval", "_last_offered", "_next_due", "last_time", "period", "tolerance")

    def __init__(self, fps: float) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.period = 1.0 / fps
        self.tolerance = self.period * EARLY_TOLERANCE
        self._next_due: float | None = None
        self.last_time: float | None = None
        self._last_offered: float | None = None
        self._frame_interval: float | None = None  # the smallest gap between frames offered so far

    def due(self, t: float) -> bool:
        """True if the frame at stream time ``t`` should be sampled; advances the schedule when it is."""
        if self.last_time is not None and t < self.last_time:
            self.reset()  # the stream's clock went backwards (a restarted or looped source)
        if self._last_offered is not None and t > self._last_offered:
            gap = t - self._last_offered
            self._frame_interval = gap if self._frame_interval is None else min(self._frame_interval, gap)
        self._last_offered = t
        if self._next_due is not None and t < self._next_due - self.tolerance:
            return False
        # Stay on the grid; restart it here on the first sample, or when the frame at the grid point was
        # missed (this one is a whole frame interval late, or half a period for a sparse track).
        late = None if self._next_due is None else t - self._next_due
        on_grid = late is not None and late < self._missed_after() - self.tolerance
        base = self._next_due if on_grid and self._next_due is not None else t
        self._next_due = base + self.period
        while self._next_due - self.tolerance <= t:  # a frame a float hair under a period late
            self._next_due += self.period
        self.last_time = t
        return True

    def _missed_after(self) -> float:
        """How late a frame may be and still stand in for the grid point: one frame interval of the
        stream (a later frame means the track was missed there); half a period while the interval is
        unknown or the track is seen more sparsely than the model's rate."""
        interval = self._frame_interval
        return interval if interval is not None and interval < self.period else self.period / 2

    def reset(self) -> None:
        """Forget the schedule: the next frame is sampled."""
        self._next_due = None
        self.last_time = None
        self._last_offered = None
        self._frame_interval = None
