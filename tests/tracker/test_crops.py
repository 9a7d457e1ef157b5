"""crop_boxes: padding, clipping, resizing, degenerate boxes."""

from __future__ import annotations

import numpy as np
import pytest

from actwatch.tracker.crops import crop_boxes


def _image() -> np.ndarray:
    img = np.zeros((120, 200, 3), np.uint8)
    img[20:80, 40:70] = (0, 0, 255)  # a red "person" 30 wide, 60 tall
    img[:, 150:] = (255, 0, 0)  # a blue band on the right
    return img


def test_exact_box_without_padding_is_that_region() -> None:
    crops = crop_boxes(_image(), np.array([[40, 20, 70, 80]], np.float32), (32, 16), pad=0.0)
    assert crops.shape == (1, 32, 16, 3) and crops.dtype == np.uint8
    assert (crops[0] == (0, 0, 255)).all()


def test_padding_adds_context_around_the_box() -> None:
    crops = crop_boxes(_image(), np.array([[40, 20, 70, 80]], np.float32), (64, 32), pad=0.2)
    # 20% of 30 px on each side is black context: the crop's left/right columns are not red.
    assert (crops[0, :, 0] == 0).all() and (crops[0, :, -1] == 0).all()
    assert (crops[0, 32, 16] == (0, 0, 255)).all()


def test_boxes_are_clipped_to_the_image() -> None:
    crops = crop_boxes(_image(), np.array([[160, -50, 260, 300]], np.float32), (20, 10), pad=0.1)
    assert (crops[0] == (255, 0, 0)).all()  # only the blue band, nothing from outside the image


def test_degenerate_boxes_give_black_crops_in_order() -> None:
    boxes = np.array(
        [[40, 20, 70, 80], [50, 50, 50, 90], [300, 300, 400, 400], [np.nan, 0, 10, 10], [10, 10, 5, 5]],
        np.float32,
    )
    crops = crop_boxes(_image(), boxes, (16, 16), pad=0.0)
    assert crops.shape == (5, 16, 16, 3)
    assert (crops[0] == (0, 0, 255)).all()
    assert not crops[1:].any()


def test_no_boxes_and_grayscale() -> None:
    assert crop_boxes(_image(), np.zeros((0, 4), np.float32), (8, 8)).shape == (0, 8, 8, 3)
    gray = np.full((50, 50), 77, np.uint8)
    out = crop_boxes(gray, np.array([[0, 0, 50, 50]]), (10, 10), pad=0.0)
    assert out.shape == (1, 10, 10, 3) and (out == 77).all()


def test_upscaling_small_boxes_keeps_content() -> None:
    crops = crop_boxes(_image(), np.array([[45, 30, 50, 40]], np.float32), (64, 32), pad=0.0)
    assert (crops[0] == (0, 0, 255)).all()


def test_bad_output_size() -> None:
    with pytest.raises(ValueError):
        crop_boxes(_image(), np.array([[0, 0, 10, 10]]), (0, 10))


def test_huge_and_infinite_boxes_give_black_crops() -> None:
    boxes = np.array([[1e30, 0, 2e30, 10], [-np.inf, 0, np.inf, 10], [-1e30, -1e30, -1e29, -1e29]], np.float64)
    assert not crop_boxes(_image(), boxes, (8, 8)).any()
