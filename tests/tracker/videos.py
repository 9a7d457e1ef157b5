"""Small generated videos for tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def write_video(path: Path, n_frames: int, fps: float, size: tuple[int, int] = (160, 120)) -> Path:
    """A small MJPG .avi with a moving gradient (no persons)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, size)
    assert writer.isOpened()
    w, h = size
    for i in range(n_frames):
        img = np.zeros((h, w, 3), np.uint8)
        img[:, :, 1] = (np.arange(w)[None, :] + 3 * i) % 256
        cv2.rectangle(img, (i * 2 % w, 10), (i * 2 % w + 10, 30), (255, 255, 255), -1)
        writer.write(img)
    writer.release()
    return path
