"""preprocess_crops / preprocess_windows: the one definition of network input."""

from __future__ import annotations

import numpy as np
import pytest

from actwatch.model.config import InputSpec
from actwatch.model.preprocess import preprocess_crops, preprocess_windows

SPEC = InputSpec(seq_len=2, input_size=(16, 24), mean=(0.1, 0.2, 0.3), std=(0.5, 0.25, 0.125))


def test_bgr_to_rgb_scaling_and_normalisation() -> None:
    crop = np.zeros((16, 24, 3), np.uint8)
    crop[..., 0] = 255  # blue
    crop[..., 1] = 51  # green
    crop[..., 2] = 0  # red
    out = preprocess_crops(crop[None], SPEC)
    assert out.shape == (1, 3, 16, 24) and out.dtype == np.float32 and out.flags.c_contiguous
    expected_rgb = [(0 / 255 - 0.1) / 0.5, (51 / 255 - 0.2) / 0.25, (255 / 255 - 0.3) / 0.125]
    for channel, value in enumerate(expected_rgb):
        np.testing.assert_allclose(out[0, channel], value, rtol=1e-6, atol=1e-6)


def test_crops_of_other_sizes_are_resized() -> None:
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(16, 24), (40, 20), (2, 3)]]
    out = preprocess_crops(crops, SPEC)
    assert out.shape == (3, 3, 16, 24)
    np.testing.assert_array_equal(out[0], preprocess_crops(crops[0][None], SPEC)[0])
    # a uniform crop stays uniform whatever the resize
    flat = np.full((30, 17, 3), 128, np.uint8)
    resized = preprocess_crops([flat], SPEC)
    np.testing.assert_allclose(resized, preprocess_crops(np.full((1, 16, 24, 3), 128, np.uint8), SPEC))


def test_empty_input_gives_an_empty_batch() -> None:
    assert preprocess_crops([], SPEC).shape == (0, 3, 16, 24)
    assert preprocess_crops(np.zeros((0, 10, 10, 3), np.uint8), SPEC).shape == (0, 3, 16, 24)


@pytest.mark.parametrize(
    "crops",
    [
        np.zeros((1, 16, 24, 3), np.float32),
        np.zeros((16, 24, 3), np.uint8),
        np.zeros((1, 16, 24, 4), np.uint8),
        [np.zeros((16, 24), np.uint8)],
        [np.zeros((0, 24, 3), np.uint8)],
    ],
)
def test_bad_crops_raise_value_error(crops: object) -> None:
    with pytest.raises(ValueError, match="BGR uint8"):
        preprocess_crops(crops, SPEC)  # type: ignore[arg-type]


def test_windows_keep_batch_and_time_axes() -> None:
    rng = np.random.default_rng(1)
    windows = rng.integers(0, 256, (3, 2, 16, 24, 3), dtype=np.uint8)
    out = preprocess_windows(windows, SPEC)
    assert out.shape == (3, 2, 3, 16, 24)
    np.testing.assert_array_equal(out[2, 1], preprocess_crops(windows[2, 1][None], SPEC)[0])
    as_lists = preprocess_windows([list(w) for w in windows], SPEC)
    np.testing.assert_array_equal(as_lists, out)
    with pytest.raises(ValueError, match="same number of crops"):
        preprocess_windows([list(windows[0]), list(windows[1][:1])], SPEC)
