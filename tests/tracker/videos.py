"""Small generated videos for tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np

from actwatch.capture import video_file


def write_video(path: Path, n_frames: int, fps: float, size: tuple[int, int] = (160, 120)) -> Path:
    """A small MJPG .avi with a moving gradient (no persons)."""
    w, h = size
    frames = []
    for i in range(n_frames):
        img = np.zeros((h, w, 3), np.uint8)
        img[:, :, 1] = (np.arange(w)[None, :] + 3 * i) % 256
        cv2.rectangle(img, (i * 2 % w, 10), (i * 2 % w + 10, 30), (255, 255, 255), -1)
        frames.append(img)
    return video_file.write_video(path, frames, fps)


def write_scene_cut_clip(source: Path, path: Path, cut_s: float, end_s: float) -> Path:
    """``source`` up to ``cut_s``, then its next stretch up to ``end_s`` mirrored: one scene cut at ``cut_s``.

    Made by ``ffmpeg`` (a run-time dependency of actwatch), MJPG in an .avi at the source's frame rate.
    """
    graph = (
        f"[0:v]trim=0:{cut_s},setpts=PTS-STARTPTS[a];"
        f"[0:v]trim={cut_s}:{end_s},setpts=PTS-STARTPTS,hflip[b];[a][b]concat=n=2:v=1[v]"
    )
    cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(source), "-filter_complex", graph]
    subprocess.run([*cmd, "-map", "[v]", "-c:v", "mjpeg", "-q:v", "3", str(path)], check=True)
    return path
