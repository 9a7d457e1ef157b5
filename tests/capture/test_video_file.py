"""The one video reader: one timestamp rule, one fallback frame rate, video files and frame folders."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from actwatch.capture.video_file import DEFAULT_FPS, capture_frames, nominal_fps, read_video, video_fps
from actwatch.errors import SourceError
from tests.tracker.videos import write_video


class ScriptedCapture:
    """Frames whose container timestamps (ms) and reported fps are given."""

    def __init__(self, positions_ms: list[float], fps: float) -> None:
        self.positions_ms, self.fps, self.reads = positions_ms, fps, 0

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.reads >= len(self.positions_ms):
            return False, None
        self.reads += 1
        return True, np.zeros((4, 4, 3), np.uint8)

    def release(self) -> None:
        pass

    def get(self, prop_id: int) -> float:
        return self.fps if prop_id == cv2.CAP_PROP_FPS else self.positions_ms[self.reads - 1]


def test_container_timestamps_with_the_nominal_interval_where_they_are_unusable() -> None:
    capture = ScriptedCapture([0.0, 100.0, math.nan, -1.0, 150.0, 500.0], fps=10.0)
    stamps = [round(f.timestamp, 6) for f in capture_frames(capture, "c", start=2.0)]
    # NaN and negative: one interval after the previous; 150 ms is not after 300 ms: same rule.
    assert stamps == [2.0, 2.1, 2.2, 2.3, 2.4, 2.5]


def test_fallback_frame_rate_when_none_is_reported() -> None:
    assert nominal_fps(ScriptedCapture([], fps=0.0)) == DEFAULT_FPS == 25.0
    assert nominal_fps(ScriptedCapture([], fps=math.inf)) == DEFAULT_FPS
    stamps = [f.timestamp for f in capture_frames(ScriptedCapture([0.0, 0.0, 0.0], fps=0.0), "c")]
    np.testing.assert_allclose(stamps, [0.0, 0.04, 0.08])


def test_video_file_frames(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi", 6, 15.0)
    frames = list(read_video(video, max_frames=4, start=1.0))
    assert [f.index for f in frames] == [0, 1, 2, 3] and {f.camera_id for f in frames} == {"clip.avi"}
    np.testing.assert_allclose([f.timestamp for f in frames], 1.0 + np.arange(4) / 15.0, atol=2e-3)
    assert video_fps(video) == pytest.approx(15.0)


def test_frame_folder_in_natural_order_skipping_unreadable_images(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in (10, 2, 1):
        cv2.imwrite(str(folder / f"f_{i}.jpg"), np.full((8, 8, 3), i, np.uint8))
    (folder / "f_3.jpg").write_bytes(b"not an image")
    (folder / "notes.txt").write_text("not a frame")
    frames = list(read_video(folder, fps=5.0, camera_id="cam"))
    assert [int(f.image[0, 0, 0]) for f in frames] == [1, 2, 10]
    assert [f.timestamp for f in frames] == [0.0, 0.2, 0.4] and frames[0].camera_id == "cam"
    assert video_fps(folder) == DEFAULT_FPS and video_fps(folder, fps=5.0) == 5.0


def test_missing_unreadable_and_empty(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="video not found"):
        list(read_video(tmp_path / "nothere.mp4"))
    bogus = tmp_path / "bogus.avi"
    bogus.write_text("not a video at all\n")
    with pytest.raises(SourceError, match=r"bogus\.avi"):
        list(read_video(bogus))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no frame could be decoded"):
        list(read_video(tmp_path / "empty"))
