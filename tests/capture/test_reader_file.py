"""CameraReader on the real sample video (vtest.avi: 768x576, 10 fps, 795 frames)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from actwatch.capture.frame import Frame
from actwatch.capture.handoff import END
from actwatch.capture.reader import CameraReader, CameraState
from actwatch.capture.settings import CaptureSettings
from tests.support.polling import wait_until

VTEST_FRAMES = 795
VTEST_DURATION_S = 79.4  # timestamp of the last frame


@dataclass(frozen=True)
class Seen:
    """What a test keeps of a frame (not the image: thousands of 768x576 images would not fit)."""

    index: int
    timestamp: float
    wall_time: float
    shape: tuple[int, int]


def consume(reader: CameraReader, *, limit: int | None = None, delay_s: float = 0.0) -> tuple[list[Seen], bool]:
    """Take frames until END (returns ended=True) or ``limit`` frames; also checks the queue bound."""
    seen: list[Seen] = []
    while limit is None or len(seen) < limit:
        assert len(reader.frames) <= reader.frames.maxsize
        item = reader.frames.get(timeout=30)
        assert item is not None, f"no frame for 30 s: {reader.status()}"
        if item is END:
            return seen, True
        assert isinstance(item, Frame)
        seen.append(Seen(item.index, item.timestamp, item.wall_time, item.shape))
        if delay_s:
            time.sleep(delay_s)
    return seen, False


def test_reads_the_whole_file_then_ends(make_reader: Callable[..., CameraReader], vtest_path: Path) -> None:
    reader = make_reader("file", str(vtest_path), CaptureSettings(), realtime=False)
    started = time.monotonic()
    seen, ended = consume(reader)
    took = time.monotonic() - started
    reader.join(5)
    status = reader.status()
    rate = status.frames_read / took
    print(f"\nvtest.avi unpaced: {status.frames_read} frames in {took:.2f}s ({rate:.0f} fps)")
    assert ended and not reader.is_alive()
    assert status.state is CameraState.ENDED and status.last_error is None and status.reconnects == 0
    assert status.frames_read == VTEST_FRAMES
    assert len(seen) + status.frames_dropped == VTEST_FRAMES
    assert all(s.shape == (576, 768) for s in seen)
    stamps = [s.timestamp for s in seen]
    assert stamps == sorted(set(stamps))  # strictly increasing
    assert [s.index for s in seen] == sorted({s.index for s in seen})
    assert seen[-1].index == VTEST_FRAMES - 1 and seen[-1].timestamp == pytest.approx(VTEST_DURATION_S, abs=1e-3)
    if seen[0].index == 0:
        assert seen[0].timestamp == 0.0
    # 10 fps container clock: consecutive frames are 0.1 s apart
    gaps = [b.timestamp - a.timestamp for a, b in itertools.pairwise(seen) if b.index == a.index + 1]
    assert gaps and all(g == pytest.approx(0.1, abs=1e-3) for g in gaps)
    # stop() after the end keeps the final state and adds no second END
    reader.stop()
    assert reader.status().state is CameraState.ENDED and len(reader.frames) == 0


def test_looping_keeps_timestamps_increasing(make_reader: Callable[..., CameraReader], vtest_path: Path) -> None:
    reader = make_reader("loop", str(vtest_path), CaptureSettings(), realtime=False, loop=True)
    seen, ended = consume(reader, limit=VTEST_FRAMES + 200)
    assert not ended
    status = reader.status()
    assert status.state is CameraState.STREAMING and status.frames_read > VTEST_FRAMES
    stamps = [s.timestamp for s in seen]
    assert stamps == sorted(set(stamps))
    assert stamps[-1] > VTEST_DURATION_S  # we are in the second pass
    # across the loop the clock advances by one frame interval, not back to zero
    boundary = [s for s in seen if s.index in (VTEST_FRAMES - 1, VTEST_FRAMES)]
    if len(boundary) == 2:
        assert boundary[1].timestamp - boundary[0].timestamp == pytest.approx(0.1, abs=1e-3)
        assert boundary[1].timestamp == pytest.approx(VTEST_DURATION_S + 0.1, abs=1e-3)
    reader.stop()
    assert reader.status().state is CameraState.STOPPED
    rest = reader.frames.drain()
    assert rest and rest[-1] is END and END not in rest[:-1]  # END comes last, exactly once


def test_realtime_paces_at_the_file_rate(make_reader: Callable[..., CameraReader], vtest_path: Path) -> None:
    reader = make_reader("paced", str(vtest_path), CaptureSettings(), realtime=True)
    seen, _ = consume(reader, limit=12)
    content = seen[-1].timestamp - seen[0].timestamp
    elapsed = seen[-1].wall_time - seen[0].wall_time
    print(f"\nrealtime: {content:.2f}s of video delivered over {elapsed:.2f}s")
    assert content >= 1.0
    # pacing sleeps until each frame is due, so delivery can lag but never run ahead of the video
    assert elapsed >= content - 0.05
    assert 0 < reader.status().fps <= 10.5


def test_unpaced_reading_is_not_held_to_the_file_rate(
    make_reader: Callable[..., CameraReader], vtest_path: Path
) -> None:
    # The whole 79 s file must be read while we wait at most 60 s: only possible without pacing.
    reader = make_reader("fast", str(vtest_path), CaptureSettings(), realtime=False)
    assert wait_until(lambda: reader.status().state is CameraState.ENDED, timeout_s=60)
    assert reader.status().frames_read == VTEST_FRAMES


@pytest.mark.parametrize("queue_size", [1, 2])
def test_slow_consumer_gets_newest_frames_and_drops_are_counted(
    make_reader: Callable[..., CameraReader], vtest_path: Path, queue_size: int
) -> None:
    reader = make_reader("slow", str(vtest_path), CaptureSettings(queue_size=queue_size), realtime=False)
    sizes: list[int] = []
    stop_sampling = threading.Event()

    def sample() -> None:  # watch the queue from another thread while the consumer sleeps
        while not stop_sampling.is_set():
            sizes.append(len(reader.frames))
            time.sleep(0.001)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        seen, ended = consume(reader, delay_s=0.02)
    finally:
        stop_sampling.set()
        sampler.join()
    status = reader.status()
    assert ended and status.state is CameraState.ENDED
    assert max(sizes) <= queue_size
    assert status.frames_dropped > 0
    assert len(seen) + status.frames_dropped == status.frames_read == VTEST_FRAMES
    assert [s.index for s in seen] == sorted(s.index for s in seen)
    if queue_size == 2:
        # the consumer ends on the newest frame (with maxsize 1, END itself displaces the last frame)
        assert seen[-1].index == VTEST_FRAMES - 1


@pytest.mark.parametrize("content", [b"not a video at all\n", b""])
def test_a_file_that_is_not_a_video_fails_at_once_instead_of_retrying(
    make_reader: Callable[..., CameraReader], tmp_path: Path, content: bytes
) -> None:
    # A local file that gives no frame cannot get better by trying again: the camera ends up failed, saying
    # why and what to do (it used to sit in 'reconnecting' for ever, retrying with backoff).
    bogus = tmp_path / "notvideo.mp4"
    bogus.write_bytes(content)
    reader = make_reader("file", str(bogus), CaptureSettings(backoff_initial_s=0.05), loop=True)
    assert wait_until(lambda: reader.status().state is CameraState.FAILED, 30), reader.status()
    status = reader.status()
    assert status.reconnects == 0 and status.frames_read == 0
    assert (
        status.last_error is not None and "is it a video?" in status.last_error and "notvideo.mp4" in status.last_error
    )
    assert reader.frames.get(timeout=5) is END  # the stream ends: the pipeline lets the camera go
