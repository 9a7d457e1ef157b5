"""Cut person crops out of a frame, all boxes of one frame in one call."""

from __future__ import annotations

import cv2
import numpy as np


def crop_boxes(image: np.ndarray, xyxy: np.ndarray, out_hw: tuple[int, int], pad: float = 0.1) -> np.ndarray:
    """Crop each ``x1 y1 x2 y2`` box of ``image`` and resize it to ``out_hw`` (height, width).

    Each box is first grown by ``pad`` times its width/height on every side (a person's outline is rarely
    tight, and the action model benefits from a little context), then clipped to the image. A box that
    is degenerate (zero or negative size, NaN, or entirely outside the image) gives a black crop, so
    the output always has one crop per box, in order. Shrinking uses ``INTER_AREA`` (no aliasing),
    enlarging ``INTER_LINEAR``.

    Returns ``(N, H, W, 3)`` uint8 (BGR, like the input).

    Example:
        >>> img = np.zeros((100, 200, 3), np.uint8)
        >>> crop_boxes(img, np.array([[10, 10, 50, 90]], np.float32), (64, 32)).shape
        (1, 64, 32, 3)
    """
    out_h, out_w = int(out_hw[0]), int(out_hw[1])
    if out_h <= 0 or out_w <= 0:
        raise ValueError(f"out_hw must be positive, got {out_hw}")
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    boxes = np.asarray(xyxy, np.float64).reshape(-1, 4)
    crops = np.zeros((len(boxes), out_h, out_w, 3), np.uint8)
    if not len(boxes):
        return crops
    img_h, img_w = image.shape[:2]
    # The boxes' bounds for all boxes at once (per-box numpy scalars cost more than the resizes); bounds
    # are clipped to the image before becoming integers, so a huge or non-finite box gives an empty patch.
    finite = np.asarray(np.isfinite(boxes).all(axis=1))
    b = np.where(finite[:, None], boxes, 0.0)
    grow = (b[:, 2:] - b[:, :2]) * pad
    low = np.floor(b[:, :2] - grow)
    high = np.ceil(b[:, 2:] + grow)
    limit = np.array([img_w, img_h], np.float64)
    low = np.clip(low, 0, limit).astype(np.int64)
    high = np.clip(high, 0, limit).astype(np.int64)
    usable = finite & (high > low).all(axis=1)
    for i, (left, top), (right, bottom) in zip(
        np.flatnonzero(usable).tolist(), low[usable].tolist(), high[usable].tolist(), strict=True
    ):
        patch = image[top:bottom, left:right]
        shrinking = patch.shape[0] >= out_h and patch.shape[1] >= out_w
        interp = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        crops[i] = cv2.resize(patch, (out_w, out_h), interpolation=interp)
    return crops
