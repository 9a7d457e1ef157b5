"""The one definition of how crops become network input; training, export parity and the runtime use it.

Crops are BGR ``uint8`` (as OpenCV reads them). Each is resized to the spec's ``input_size`` when it
differs, converted to RGB, scaled to [0, 1] and normalised with the spec's mean and std.

Example:
    >>> import numpy as np
    >>> from actwatch.model.config import InputSpec
    >>> spec = InputSpec(seq_len=4, input_size=(64, 48))
    >>> preprocess_crops([np.zeros((80, 40, 3), np.uint8)], spec).shape
    (1, 3, 64, 48)
    >>> preprocess_windows(np.zeros((2, 4, 64, 48, 3), np.uint8), spec).shape
    (2, 4, 3, 64, 48)
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from actwatch.model.config import InputSpec


def stack_crops(crops: np.ndarray | Sequence[np.ndarray], height: int, width: int) -> np.ndarray:
    """``(N, height, width, 3)`` uint8 from an array or a list of crops of any size."""
    if isinstance(crops, np.ndarray):
        if crops.ndim != 4 or crops.shape[-1] != 3:
            raise ValueError(f"crops must be (N, H, W, 3) BGR uint8, got shape {crops.shape}")
        if crops.dtype != np.uint8:
            raise ValueError(f"crops must be BGR uint8 images, got dtype {crops.dtype}")
        if crops.shape[1:3] == (height, width):
            return crops
        items: Sequence[np.ndarray] = list(crops)
    else:
        items = crops
    out = np.empty((len(items), height, width, 3), np.uint8)
    for i, crop in enumerate(items):
        crop = np.asarray(crop)
        if crop.ndim != 3 or crop.shape[2] != 3 or crop.dtype != np.uint8 or 0 in crop.shape:
            raise ValueError(f"crop {i} must be a non-empty (H, W, 3) BGR uint8 image, got {crop.dtype} {crop.shape}")
        if crop.shape[:2] == (height, width):
            out[i] = crop
        else:
            # INTER_AREA averages when shrinking (no aliasing), INTER_LINEAR is the usual choice to enlarge.
            shrink = crop.shape[0] > height or crop.shape[1] > width
            out[i] = cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return out


def preprocess_crops(crops: np.ndarray | Sequence[np.ndarray], spec: InputSpec) -> np.ndarray:
    """BGR uint8 crops (``(N, H, W, 3)`` array or a list of ``(h, w, 3)``) -> ``(N, 3, H, W)`` float32."""
    height, width = spec.input_size
    stacked = stack_crops(crops, height, width)
    # (x / 255 - mean) / std == x * scale - offset, done in one pass over float32 RGB.
    std = np.asarray(spec.std, np.float32)
    scale = 1.0 / (255.0 * std)
    offset = np.asarray(spec.mean, np.float32) / std
    rgb = stacked[..., ::-1].astype(np.float32)
    rgb *= scale
    rgb -= offset
    return np.ascontiguousarray(rgb.transpose(0, 3, 1, 2))


def preprocess_windows(windows: np.ndarray | Sequence[Sequence[np.ndarray]], spec: InputSpec) -> np.ndarray:
    """Windows of BGR uint8 crops ``(B, T, H, W, 3)`` -> ``(B, T, 3, H, W)`` float32."""
    if isinstance(windows, np.ndarray):
        if windows.ndim != 5:
            raise ValueError(f"windows must be (B, T, H, W, 3) BGR uint8, got shape {windows.shape}")
        b, t = windows.shape[:2]
        flat = preprocess_crops(windows.reshape(b * t, *windows.shape[2:]), spec)
    else:
        lengths = {len(w) for w in windows}
        if len(lengths) > 1:
            raise ValueError(f"all windows must have the same number of crops, got {sorted(lengths)}")
        b, t = len(windows), (lengths.pop() if lengths else spec.seq_len)
        flat = preprocess_crops([crop for window in windows for crop in window], spec)
    return flat.reshape(b, t, *flat.shape[1:])
