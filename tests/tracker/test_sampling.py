"""FpsSampler: sampling at the model's fps from stream timestamps."""

from __future__ import annotations

import numpy as np
import pytest

from actwatch.tracker.sampling import FpsSampler


def _taken(stream_fps: float, seconds: float, model_fps: float = 10.0, jitter: float = 0.0) -> list[float]:
    sampler = FpsSampler(model_fps)
    rng = np.random.default_rng(0)
    times = np.arange(int(stream_fps * seconds)) / stream_fps
    times = times + rng.uniform(-jitter, jitter, len(times)) if jitter else times
    return [float(t) for t in np.maximum.accumulate(times) if sampler.due(float(t))]


@pytest.mark.parametrize("stream_fps", [30.0, 25.0, 15.0, 12.0, 10.0])
def test_streams_at_or_above_model_fps_give_model_fps(stream_fps: float) -> None:
    taken = _taken(stream_fps, 10.0)
    assert len(taken) == 100  # 10 s at 10 samples/s, whatever the camera's rate
    assert np.diff(taken).max() < 0.1 + 1.0 / stream_fps


def test_30fps_takes_every_third_frame() -> None:
    sampler = FpsSampler(10.0)
    assert [i for i in range(30) if sampler.due(i / 30)] == list(range(0, 30, 3))


def test_slower_stream_contributes_every_frame_without_duplicates() -> None:
    taken = _taken(5.0, 4.0)
    assert len(taken) == 20 and len(set(taken)) == 20


def test_jitter_does_not_change_the_rate() -> None:
    taken = _taken(30.0, 20.0, jitter=0.004)
    assert 195 <= len(taken) <= 201


def test_gap_restarts_the_grid_and_clock_going_back_resets() -> None:
    sampler = FpsSampler(10.0)
    assert sampler.due(0.0) and not sampler.due(0.05)
    assert sampler.due(5.0) and not sampler.due(5.05) and sampler.due(5.1)
    assert sampler.due(1.0)  # the stream restarted: sample at once
    assert not sampler.due(1.02)


def test_invalid_fps() -> None:
    with pytest.raises(ValueError):
        FpsSampler(0)
