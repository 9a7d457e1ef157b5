"""CameraReader failure handling: exceptions, hung reads/opens, give-up, backoff, webcam and HTTP sources.

Hung OpenCV calls and exceptions from inside a capture cannot be produced on demand with real sources
(FFmpeg's own timeouts unblock real reads), so those cases use a small fake capture; everything else
uses real sources: the MJPEG server on loopback, a refused port, a missing webcam.
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from actwatch.capture.frame import Frame
from actwatch.capture.handoff import END
from actwatch.capture.reader import CameraReader, CameraState
from actwatch.capture.settings import CaptureSettings
from actwatch.capture.sources import SourceSpec
from tests.support.mjpeg import MjpegServer
from tests.support.polling import wait_until
from tests.support.rtsp import free_tcp_port

SECRET = "Zx9-secret-pw"
URL = f"rtsp://admin:{SECRET}@127.0.0.1:1/cam"
FAST = {"stall_timeout_s": 0.5, "backoff_initial_s": 0.05, "backoff_max_s": 0.2, "open_timeout_s": 0.5}


class FakeCapture:
    """Frames of 8x8 pixels; after ``frames`` reads: fails, raises, or blocks until ``unblock`` then
    returns a late frame (as a read that finally completes would)."""

    def __init__(self, frames: int | None, then: str = "fail") -> None:
        self.frames, self.then, self.reads = frames, then, 0
        self.unblock = threading.Event()
        self.released = 0

    def read(self) -> tuple[bool, np.ndarray | None]:
        self.reads += 1
        if self.frames is None or self.reads <= self.frames:
            time.sleep(0.005)  # a camera, not a busy loop: the test machine's cores are shared
            return True, np.full((8, 8, 3), self.reads % 255, np.uint8)
        if self.then == "raise":
            raise RuntimeError(f"decoder crashed on {URL} (password {SECRET})")
        if self.then == "block":
            self.unblock.wait()
            return True, np.zeros((8, 8, 3), np.uint8)  # a late frame: must not reach the queue
        return False, None

    def release(self) -> None:
        self.released += 1

    def get(self, prop_id: int) -> float:
        return 0.0


class ScriptedOpener:
    """Hands out the given captures in order (an Exception item is raised instead)."""

    def __init__(self, *plan: FakeCapture | Exception) -> None:
        self.plan, self.calls = list(plan), 0

    def __call__(self, source: SourceSpec, settings: CaptureSettings) -> FakeCapture:
        item = self.plan[min(self.calls, len(self.plan) - 1)]
        self.calls += 1
        if isinstance(item, Exception):
            raise item
        return item


def assert_no_secret(reader: CameraReader, caplog: pytest.LogCaptureFixture) -> None:
    status = reader.status()
    assert SECRET not in repr(status) and SECRET not in repr(reader)
    assert all(SECRET not in record.getMessage() for record in caplog.records)


def frames_of(items: Sequence[object]) -> list[Frame]:
    return [i for i in items if isinstance(i, Frame)]


def test_exception_inside_read_becomes_a_masked_error_and_a_reconnect(
    make_reader: Callable[..., CameraReader], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="actwatch.capture")
    broken = FakeCapture(3, then="raise")
    opener = ScriptedOpener(broken, FakeCapture(None))
    reader = make_reader("cam", URL, CaptureSettings(**FAST), opener=opener)
    assert wait_until(lambda: reader.status().frames_read > 20, timeout_s=20)
    status = reader.status()
    assert status.state is CameraState.STREAMING and status.reconnects == 1 and opener.calls == 2
    assert status.last_error is not None and "decoder crashed on rtsp://admin:***@127.0.0.1:1/cam" in status.last_error
    assert_no_secret(reader, caplog)
    assert broken.released == 1  # the broken capture was released
    got = frames_of(reader.frames.drain())
    assert [f.index for f in got] == sorted(f.index for f in got)


def test_open_errors_give_up_after_max_attempts(
    make_reader: Callable[..., CameraReader], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="actwatch.capture")
    opener = ScriptedOpener(ConnectionError(f"401 for {URL}: bad password {SECRET}"))
    reader = make_reader("cam", URL, CaptureSettings(**FAST, max_attempts=3), opener=opener)
    reader.join(20)
    status = reader.status()
    assert not reader.is_alive() and status.state is CameraState.FAILED
    assert opener.calls == 3 and status.reconnects == 2 and status.frames_read == 0
    assert status.last_error == "401 for rtsp://admin:***@127.0.0.1:1/cam: bad password ***"
    assert reader.frames.drain() == [END]
    assert_no_secret(reader, caplog)


def test_a_hung_read_is_abandoned_by_the_watchdog_and_stop_does_not_hang(
    make_reader: Callable[..., CameraReader],
) -> None:
    hung = FakeCapture(2, then="block")
    opener = ScriptedOpener(hung, FakeCapture(None))
    reader = make_reader("cam", URL, CaptureSettings(**FAST), opener=opener)
    assert wait_until(lambda: opener.calls == 2 and reader.status().frames_read > 10, timeout_s=20)
    status = reader.status()
    assert status.state is CameraState.STREAMING and status.reconnects == 1
    assert status.last_error is not None and status.last_error.startswith("stalled: no frame from")
    assert hung.released == 0  # never released from another thread while its read() runs
    hung.unblock.set()
    assert wait_until(lambda: hung.released == 1, timeout_s=5)  # its own thread releases it

    # A read that hangs forever must not hold up stop().
    stuck = FakeCapture(1, then="block")
    reader2 = make_reader("cam2", URL, CaptureSettings(stall_timeout_s=30), opener=ScriptedOpener(stuck))
    assert wait_until(lambda: stuck.reads == 2, timeout_s=10)
    reader2.stop(timeout=5)
    assert not reader2.is_alive() and reader2.status().state is CameraState.STOPPED
    items = reader2.frames.drain()
    assert items[-1] is END
    stuck.unblock.set()  # the abandoned read returns now: nothing more may be delivered after END
    assert wait_until(lambda: stuck.released == 1, timeout_s=5)
    assert reader2.frames.drain() == []


def test_a_hung_open_times_out(make_reader: Callable[..., CameraReader]) -> None:
    release_open = threading.Event()

    def hanging_opener(source: SourceSpec, settings: CaptureSettings) -> FakeCapture:
        release_open.wait(10)
        return FakeCapture(None)

    reader = make_reader("cam", URL, CaptureSettings(**FAST), opener=hanging_opener)
    try:
        assert wait_until(lambda: reader.status().state is CameraState.RECONNECTING, timeout_s=10)
        assert reader.status().last_error == "timed out opening rtsp://admin:***@127.0.0.1:1/cam after 1.0s"
    finally:
        release_open.set()


def test_backoff_grows_and_resets_after_a_good_connection(
    make_reader: Callable[..., CameraReader], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="actwatch.capture")
    down = OSError("connection refused")
    opener = ScriptedOpener(down, down, down, FakeCapture(5), down, FakeCapture(None))
    settings = CaptureSettings(
        stall_timeout_s=2, backoff_initial_s=0.1, backoff_factor=2, backoff_max_s=0.3, backoff_jitter=0
    )
    reader = make_reader("cam", URL, settings, opener=opener)
    assert wait_until(lambda: opener.calls == 6 and reader.status().frames_read > 10, timeout_s=20)
    delays = [float(m) for r in caplog.records for m in re.findall(r"reconnecting in ([0-9.]+)s", r.getMessage())]
    # 3 failures (0.1, 0.2, capped 0.3), frames came, then the failures count from 1 again
    assert delays == [0.1, 0.2, 0.3, 0.1, 0.2]
    assert reader.status().reconnects == 5


def test_backoff_delay_jitter_and_cap() -> None:
    import random

    s = CaptureSettings()
    rng = random.Random(7)
    for attempt, base in [(1, 0.5), (2, 1.0), (3, 2.0), (6, 16.0), (7, 30.0), (50, 30.0)]:
        delays = [s.backoff_delay(attempt, rng) for _ in range(200)]
        assert min(delays) >= base * 0.8 and max(delays) <= base * 1.2
        assert len(set(delays)) > 1  # jittered


@pytest.mark.parametrize(
    "kwargs",
    [
        {"queue_size": 3},
        {"queue_size": 0},
        {"stall_timeout_s": 0},
        {"backoff_initial_s": 5, "backoff_max_s": 1},
        {"backoff_jitter": 1.5},
        {"max_attempts": 0},
        {"rtsp_transport": "http"},
        {"ffmpeg_options": {"i": "/etc/passwd"}},
        {"ffmpeg_options": {"-y": ""}},
        {"ffmpeg_options": {"analyzeduration": "1\x00"}},
        {"unknown_option": True},
    ],
)
def test_settings_are_strict(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        CaptureSettings(**kwargs)


def test_settings_document_every_field() -> None:
    assert all(field.description for field in CaptureSettings.model_fields.values())


def test_http_mjpeg_camera_streams(make_reader: Callable[..., CameraReader], vtest_path: Path) -> None:
    with MjpegServer(vtest_path, size=(192, 144)) as server:
        reader = make_reader("mjpeg", server.url("video.mjpg"), CaptureSettings(stall_timeout_s=5))
        item = reader.frames.get(timeout=20)
        assert isinstance(item, Frame) and item.shape == (144, 192)
        assert wait_until(lambda: reader.status().frames_read >= 5, timeout_s=20)
        assert reader.status().state is CameraState.STREAMING
        missing = make_reader("gone", server.url("missing"), CaptureSettings(**FAST))
        assert wait_until(lambda: missing.status().state is CameraState.RECONNECTING, timeout_s=20)
        assert "could not open http source http://127.0.0.1:" in (missing.status().last_error or "")
        assert reader.status().state is CameraState.STREAMING  # one bad camera does not affect another


def test_refused_http_port_reconnects_with_masked_error(
    make_reader: Callable[..., CameraReader],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.INFO, logger="actwatch.capture")
    url = f"http://viewer:{SECRET}@127.0.0.1:{free_tcp_port()}/video.mjpg?token=tok-{SECRET}"
    reader = make_reader("closed", url, CaptureSettings(**FAST))
    assert wait_until(lambda: reader.status().reconnects >= 2, timeout_s=20)
    status = reader.status()
    assert status.state is CameraState.RECONNECTING and status.frames_read == 0
    assert status.last_error is not None and "http://viewer:***@127.0.0.1" in status.last_error
    assert_no_secret(reader, caplog)
    out, err = capfd.readouterr()  # what OpenCV/FFmpeg print themselves, below Python's logging
    assert SECRET not in out + err


def test_missing_webcam_fails_after_max_attempts(make_reader: Callable[..., CameraReader]) -> None:
    device = next(f"/dev/video{i}" for i in range(63, 0, -1) if not Path(f"/dev/video{i}").exists())
    reader = make_reader("webcam", device, CaptureSettings(**FAST, max_attempts=2))
    reader.join(20)
    status = reader.status()
    assert status.state is CameraState.FAILED and status.reconnects == 1
    assert status.last_error == (
        f"could not open webcam source {device}; is the device there (ls /dev/video*) "
        "and not in use by another program?"
    )
    assert reader.frames.drain() == [END]


def test_looping_file_reopens_releases_and_falls_back_to_nominal_timestamps(
    make_reader: Callable[..., CameraReader], vtest_path: Path
) -> None:
    # A container that reports no PTS and no fps (get() -> 0): 25 fps nominal timestamps, still
    # increasing across loops; every pass's capture is released.
    passes = [FakeCapture(5) for _ in range(50)]
    opener = ScriptedOpener(*passes)
    reader = make_reader(
        "loop", str(vtest_path), CaptureSettings(queue_size=1), realtime=False, loop=True, opener=opener
    )
    seen: list[Frame] = []
    while len(seen) < 12:
        item = reader.frames.get(timeout=10)
        assert isinstance(item, Frame)
        seen.append(item)
    reader.stop()
    stamps = [f.timestamp for f in seen]
    assert stamps == sorted(set(stamps))
    consecutive = [(a, b) for a, b in itertools.pairwise(seen) if b.index == a.index + 1]
    assert consecutive and all(b.timestamp - a.timestamp == pytest.approx(0.04) for a, b in consecutive)
    assert opener.calls >= 3
    # every pass's capture is released, the one open at stop() too (by its own thread, just after)
    assert wait_until(lambda: all(c.released == 1 for c in passes[: opener.calls]), timeout_s=5)


def test_start_twice_is_an_error_and_stop_is_idempotent(make_reader: Callable[..., CameraReader]) -> None:
    reader = make_reader("cam", URL, CaptureSettings(**FAST), opener=ScriptedOpener(FakeCapture(None)))
    with pytest.raises(RuntimeError, match="already started"):
        reader.start()
    reader.stop()
    reader.stop()
    items = reader.frames.drain()
    assert items.count(END) == 1 and items[-1] is END
    assert reader.status().state is CameraState.STOPPED


class StillSceneCapture(FakeCapture):
    """A perfectly still scene: identical pixels every frame, but the stream position advances."""

    def __init__(self) -> None:
        super().__init__(None)

    def read(self) -> tuple[bool, np.ndarray | None]:
        self.reads += 1
        time.sleep(0.02)
        return True, np.zeros((8, 8, 3), np.uint8)

    def get(self, prop_id: int) -> float:
        return self.reads * 40.0 if prop_id == 0 else 25.0


def test_a_still_scene_with_advancing_positions_is_fresh(make_reader: Callable[..., CameraReader]) -> None:
    # Identical pixels alone are not a stall: an H.264 camera on a still scene decodes identical frames.
    settings = CaptureSettings(**FAST)
    reader = make_reader("still", URL, settings, opener=ScriptedOpener(StillSceneCapture()))
    # Frames (0.02 s apart at the fastest) keep coming for at least 4 stall timeouts; the watchdog never fires.
    assert wait_until(lambda: reader.status().frames_read >= 4 * settings.stall_timeout_s / 0.02, timeout_s=30)
    status = reader.status()
    assert status.state is CameraState.STREAMING and status.reconnects == 0 and status.last_error is None
