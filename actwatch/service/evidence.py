"""Evidence images of an event: the snapshot (the frame, the person boxed and captioned, as a JPEG) and the
strip of the window's crops (a lossless PNG, oldest left), rendered off the compute path by the event
writer's render threads and stored beside the event (:mod:`actwatch.service.store`)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

# Level 1, each row filtered by its left neighbour (SUB) instead of libpng trying all five filters on every
# row: a 30-crop strip of 112x112 in about two thirds of the time and a few % fewer bytes (vtest.avi crops,
# benchmarks/evidence_cost.py; the RLE and Huffman-only strategies were faster still but 35-40% larger).
# On an H100 box at 64 cameras the strips were 90% of the events' rendering, itself 30% of the host's busy
# time. Lossless all the same: hard examples are trained from these strips.
STRIP_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB]


def encode_crops_strip(crops: np.ndarray | Sequence[np.ndarray]) -> bytes:
    """A window's crops as one lossless PNG, side by side (``H`` × ``T·W``), oldest left: ``(T, H, W, 3)``
    uint8 BGR, or the window's ``T`` crops of ``(H, W, 3)`` as they are (no stacked copy first)."""
    parts = [np.asarray(crop) for crop in crops]
    if not parts or any(p.ndim != 3 or p.shape[-1] != 3 or p.shape[0] != parts[0].shape[0] for p in parts):
        got = np.shape(crops) if isinstance(crops, np.ndarray) else [p.shape for p in parts]
        raise ValueError(f"crops must be (T, H, W, 3), or T crops of (H, W, 3), got {got}")
    strip = np.ascontiguousarray(np.concatenate([p.astype(np.uint8, copy=False) for p in parts], axis=1))
    ok, buf = cv2.imencode(".png", strip, STRIP_PNG)
    if not ok:
        raise ValueError("PNG encoding of the crops failed")
    return buf.tobytes()


def render_snapshot(
    frame_bgr: np.ndarray,
    bbox: tuple[float, float, float, float] | list[float],
    label: str,
    score: float,
    *,
    max_side: int = 1280,
    quality: int = 85,
) -> bytes:
    """The frame as a JPEG with ``bbox`` drawn and captioned ``label score``; large frames are shrunk.

    Example:
        >>> jpeg = render_snapshot(np.zeros((48, 64, 3), np.uint8), (4, 4, 30, 40), "fall", 0.93)
        >>> jpeg[:2] == b"\\xff\\xd8"
        True
    """
    image: np.ndarray = np.ascontiguousarray(frame_bgr, dtype=np.uint8).copy()
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    x1, y1, x2, y2 = (round(v * scale) for v in bbox)
    thickness = max(2, round(max(image.shape[:2]) / 400))
    color = (0, 0, 255)
    cv2.rectangle(image, (x1, y1), (x2, y2), color, thickness)
    caption = f"{label} {score:.2f}"
    font_scale = max(0.5, max(image.shape[:2]) / 1200)
    (tw, th), base = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
    ty = y1 - 4 if y1 - th - base - 4 >= 0 else min(image.shape[0] - 1, y2 + th + base + 4)
    cv2.rectangle(image, (x1, ty - th - base), (x1 + tw + 4, ty + 2), color, cv2.FILLED)
    cv2.putText(image, caption, (x1 + 2, ty - base // 2), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255), 1)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding of the snapshot failed")
    return buf.tobytes()
