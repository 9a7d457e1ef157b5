"""Evidence images: the snapshot JPEG and the lossless PNG strip of a window's crops."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from actwatch.service.evidence import encode_crops_strip, render_snapshot


def decode(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not an image"
    return image


def test_render_snapshot_draws_the_box() -> None:
    frame = np.zeros((100, 200, 3), np.uint8)
    data = render_snapshot(frame, (50, 40, 150, 90), "fighting", 0.87)
    image = decode(data)
    assert image.shape == (100, 200, 3)
    b, g, r = image[65, 50].astype(int)  # on the left edge of the box: red
    assert r > 150 and g < 100 and b < 100
    assert image[65, 100].max() < 40  # inside the box: untouched black
    big = render_snapshot(np.zeros((1440, 2560, 3), np.uint8), (0, 0, 100, 100), "x", 0.5)
    assert decode(big).shape[1] == 1280


def test_crops_strip_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="crops must be"):
        encode_crops_strip(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="crops must be"):
        encode_crops_strip([np.zeros((8, 8, 3), np.uint8), np.zeros((9, 8, 3), np.uint8)])  # unequal heights
    with pytest.raises(ValueError, match="crops must be"):
        encode_crops_strip(())


def test_crops_strip_of_a_window_s_own_crops_is_that_of_the_stacked_window() -> None:
    rng = np.random.default_rng(3)
    crops = tuple(rng.integers(0, 255, (16, 12, 3), dtype=np.uint8) for _ in range(5))
    assert encode_crops_strip(crops) == encode_crops_strip(np.stack(crops))


def test_crops_strip_gives_back_every_pixel_of_real_crops(vtest_path: Path) -> None:
    """Lossless, whatever the PNG filter and strategy: hard examples are trained from these strips."""
    capture = cv2.VideoCapture(str(vtest_path))
    frames = [capture.read()[1] for _ in range(30)]
    capture.release()
    crops = [cv2.resize(frame[100:300, 300 + i : 400 + i], (112, 112)) for i, frame in enumerate(frames)]
    strip = decode(encode_crops_strip(crops))
    assert strip.shape == (112, 30 * 112, 3)
    np.testing.assert_array_equal(strip, np.concatenate(crops, axis=1))
