"""Event clips: the per-camera ring, pre/post-roll, bounds, the MP4 written by ffmpeg, retention."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from actwatch.service.clips import ClipFrame, ClipRecorder, ClipStore, write_mp4
from actwatch.service.media_settings import ClipSettings


class RecordingWriter:
    """Keeps what it was asked to write (frame times per event) instead of encoding."""

    def __init__(self) -> None:
        self.clips: dict[str, list[float]] = {}
        self.fps: dict[str, float] = {}
        self.done = threading.Event()

    def __call__(self, path: Path, frames: Sequence[ClipFrame], fps: float) -> None:
        self.clips[path.stem] = [f.time for f in frames]
        self.fps[path.stem] = fps
        self.done.set()


def image(value: int = 0, w: int = 64, h: int = 48) -> np.ndarray:
    return np.full((h, w, 3), value, np.uint8)


def recorder(tmp_path: Path, **settings: float) -> tuple[ClipRecorder, RecordingWriter]:
    writer = RecordingWriter()
    store = ClipStore(tmp_path / "clips", retention_days=1)
    return ClipRecorder(store, ClipSettings(**settings), writer=writer), writer


def test_a_clip_has_its_pre_roll_from_the_ring_and_its_post_roll_at_the_clip_rate(tmp_path: Path) -> None:
    rec, writer = recorder(tmp_path, pre_roll_s=1.0, post_roll_s=1.0, fps=4)
    for i in range(40):  # 20 fps for 2 s: the ring keeps 4 a second
        rec.add_frame("door", 100.0 + i / 20, image())
    assert rec.start("ev1", "door", 101.95)
    assert not writer.done.is_set()  # post-roll still to come
    for i in range(40, 80):
        rec.add_frame("door", 100.0 + i / 20, image())
        rec.add_frame("hall", 100.0 + i / 20, image())  # another camera's frames are not in the clip
    rec.close()
    times = writer.clips["ev1"]
    assert times == sorted(times) and times[0] >= 100.95 and times[-1] >= 102.95
    gaps = np.diff(times)
    assert gaps.min() >= 0.25 - 1e-9  # at most fps frames a second
    assert len(times) == 9  # 1 s before (4 + the confirming one) and 1 s after (4)
    assert writer.fps["ev1"] == 4.0


def test_a_camera_processed_slower_than_the_clip_rate_still_plays_in_real_time(tmp_path: Path) -> None:
    rec, writer = recorder(tmp_path, pre_roll_s=2.0, post_roll_s=2.0, fps=8)
    for i in range(5):  # 2 frames a second
        rec.add_frame("door", 10.0 + i / 2, image())
    rec.start("ev", "door", 12.0)
    for i in range(5, 10):
        rec.add_frame("door", 10.0 + i / 2, image())
    rec.close()
    assert writer.clips["ev"] == [10.0, 10.5, 11.0, 11.5, 12.0, 12.5, 13.0, 13.5, 14.0]
    assert writer.fps["ev"] == 2.0  # 9 frames over 4 s, not 9 frames at 8 fps


def test_clips_collected_at_once_are_bounded(tmp_path: Path) -> None:
    rec, writer = recorder(tmp_path, pre_roll_s=0.5, post_roll_s=5.0, fps=2, max_pending=2)
    rec.add_frame("door", 10.0, image())
    assert rec.start("a", "door", 10.0) and rec.start("b", "door", 10.0)
    assert not rec.start("c", "door", 10.0)  # a third event while two are collecting gets no clip
    assert rec.skipped == 1
    rec.close()  # clips still collecting are written with what they have
    assert set(writer.clips) == {"a", "b"}


def test_a_removed_camera_writes_its_clips_and_disabled_clips_cost_nothing(tmp_path: Path) -> None:
    rec, writer = recorder(tmp_path, pre_roll_s=1.0, post_roll_s=10.0, fps=5)
    rec.add_frame("door", 1.0, image())
    rec.start("ev", "door", 1.0)
    rec.forget("door")
    assert writer.done.wait(60) and writer.clips["ev"] == [1.0]
    rec.close()

    off, off_writer = recorder(tmp_path, enabled=False)
    off.add_frame("door", 1.0, image())
    assert not off.start("ev2", "door", 1.0)
    off.close()
    assert off_writer.clips == {}


def test_large_frames_are_shrunk_before_they_enter_the_ring(tmp_path: Path) -> None:
    rec, _ = recorder(tmp_path, max_width=320)
    big = image(w=1280, h=720)
    rec.add_frame("door", 1.0, big)
    small = image(w=320, h=240)
    rec.add_frame("door", 2.0, small)
    kept = list(rec._rings["door"])
    assert kept[0].image.shape == (180, 320, 3)
    assert kept[1].image is small  # small enough: kept by reference, no copy


def test_write_mp4_makes_an_h264_file_browsers_play(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frames = [ClipFrame(i / 5, rng.integers(0, 255, (57, 75, 3), dtype=np.uint8)) for i in range(10)]  # odd size
    target = tmp_path / "clips" / "ab" / "abc.mp4"
    write_mp4(target, frames, 5.0)
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    assert not [p for p in target.parent.iterdir() if p != target]  # no temporary left
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(target)],
        capture_output=True,
        check=True,
        text=True,
    )
    info = json.loads(probe.stdout)
    video = info["streams"][0]
    assert video["codec_name"] == "h264" and video["pix_fmt"] == "yuv420p"
    assert (video["width"], video["height"]) == (74, 56)  # even sizes for yuv420p
    assert int(video["nb_frames"]) == 10 and abs(float(info["format"]["duration"]) - 2.0) < 0.3
    assert "mp4" in info["format"]["format_name"]


def test_write_mp4_leaves_nothing_when_ffmpeg_fails(tmp_path: Path) -> None:
    target = tmp_path / "x.mp4"
    with pytest.raises(RuntimeError, match="ffmpeg could not write the clip"):
        write_mp4(target, [ClipFrame(0.0, image(w=1, h=1))], 5.0)  # yuv420p H.264 cannot be 1 pixel wide
    assert list(tmp_path.iterdir()) == []


def test_clip_retention(tmp_path: Path) -> None:
    store = ClipStore(tmp_path, retention_days=1, clock=lambda: 10 * 86400.0)
    old, new = store.path("old1"), store.path("new1")
    for path, age_days in ((old, 2), (new, 0.5)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        t = 10 * 86400.0 - age_days * 86400.0
        os.utime(path, (t, t))
    assert store.purge() == 1
    assert store.existing("old1") is None and store.existing("new1") == new
