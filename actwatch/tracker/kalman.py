"""The constant-velocity Kalman filter ByteTrack predicts boxes with, vectorised over many tracks.

A box is measured as ``(cx, cy, a, h)``: centre, aspect ratio ``w / h`` and height. The state adds one
velocity per coordinate. Noise is proportional to the box height (a near, tall person moves more pixels
per frame than a far one), with the weights of the ByteTrack paper. Time is counted in *frame steps*
(``elapsed seconds x nominal frame rate``), so a dropped frame is a step of 2 and the noise tuning of
the paper, made per frame, still holds.

Example (a box moving 2 px right per step, seen three times, predicted one step ahead):
    >>> kf = BoxKalman()
    >>> mean, cov = kf.initiate(xyxy_to_xyah(np.array([[0.0, 0.0, 20.0, 40.0]])))
    >>> for step in (1, 2):
    ...     mean, cov = kf.predict(mean, cov, np.array([1.0]))
    ...     mean, cov = kf.update(mean, cov, xyxy_to_xyah(np.array([[2.0 * step, 0.0, 20 + 2.0 * step, 40.0]])))
    >>> mean, cov = kf.predict(mean, cov, np.array([1.0]))
    >>> bool(4.0 < xyah_to_xyxy(mean[:, :4])[0, 0] < 6.0)
    True
"""

from __future__ import annotations

import numpy as np

# Noise weights relative to the box height, per frame step (the values of the ByteTrack paper's filter).
_POSITION_WEIGHT = 1.0 / 20
_VELOCITY_WEIGHT = 1.0 / 160
_NDIM = 4


def xyxy_to_xyah(xyxy: np.ndarray) -> np.ndarray:
    """``(N, 4)`` corner boxes -> ``(N, 4)`` ``(cx, cy, w / h, h)``."""
    xyxy = np.asarray(xyxy, np.float64)
    w = xyxy[:, 2] - xyxy[:, 0]
    h = np.maximum(xyxy[:, 3] - xyxy[:, 1], 1e-6)
    out = np.empty((len(xyxy), 4))  # filled column by column: np.stack costs more than the arithmetic here
    out[:, 0], out[:, 1], out[:, 2], out[:, 3] = xyxy[:, 0] + w / 2, xyxy[:, 1] + h / 2, w / h, h
    return out


def xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    """``(N, 4)`` ``(cx, cy, w / h, h)`` -> ``(N, 4)`` corner boxes."""
    w = xyah[:, 2] * xyah[:, 3]
    h = xyah[:, 3]
    out = np.empty((len(xyah), 4), np.result_type(xyah.dtype, np.float32))
    out[:, 0], out[:, 1], out[:, 2], out[:, 3] = (
        xyah[:, 0] - w / 2,
        xyah[:, 1] - h / 2,
        xyah[:, 0] + w / 2,
        xyah[:, 1] + h / 2,
    )
    return out


def _diag(std: np.ndarray) -> np.ndarray:
    """``(N, D)`` standard deviations -> ``(N, D, D)`` diagonal covariances."""
    out = np.zeros((*std.shape, std.shape[-1]))
    idx = np.arange(std.shape[-1])
    out[:, idx, idx] = std**2
    return out


class BoxKalman:
    """Initiate, predict and correct ``(N, 8)`` means with ``(N, 8, 8)`` covariances, all tracks at once."""

    def initiate(self, xyah: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A new track's state from its first measurement, with zero velocity."""
        h = xyah[:, 3]
        mean = np.concatenate([xyah, np.zeros_like(xyah)], axis=1)
        std = np.stack(
            [
                2 * _POSITION_WEIGHT * h,
                2 * _POSITION_WEIGHT * h,
                np.full_like(h, 1e-2),
                2 * _POSITION_WEIGHT * h,
                10 * _VELOCITY_WEIGHT * h,
                10 * _VELOCITY_WEIGHT * h,
                np.full_like(h, 1e-5),
                10 * _VELOCITY_WEIGHT * h,
            ],
            axis=1,
        )
        return mean, _diag(std)

    def predict(self, mean: np.ndarray, cov: np.ndarray, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Advance each track by its own number of frame ``steps`` (``(N,)``, may be fractional)."""
        n = len(mean)
        motion = np.tile(np.eye(2 * _NDIM), (n, 1, 1))
        motion[:, np.arange(_NDIM), np.arange(_NDIM) + _NDIM] = steps[:, None]
        h = mean[:, 3]
        std = np.stack(
            [
                _POSITION_WEIGHT * h,
                _POSITION_WEIGHT * h,
                np.full_like(h, 1e-2),
                _POSITION_WEIGHT * h,
                _VELOCITY_WEIGHT * h,
                _VELOCITY_WEIGHT * h,
                np.full_like(h, 1e-5),
                _VELOCITY_WEIGHT * h,
            ],
            axis=1,
        )
        # Process noise grows with the time elapsed: a track unseen for two steps is twice as uncertain.
        process = _diag(std) * np.maximum(steps, 0.0)[:, None, None]
        mean = np.einsum("nij,nj->ni", motion, mean)
        cov = motion @ cov @ motion.transpose(0, 2, 1) + process
        return mean, cov

    def update(self, mean: np.ndarray, cov: np.ndarray, xyah: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Correct each predicted state with its measured box."""
        h = mean[:, 3]
        std = np.stack([_POSITION_WEIGHT * h, _POSITION_WEIGHT * h, np.full_like(h, 1e-1), _POSITION_WEIGHT * h], 1)
        projected_cov = cov[:, :_NDIM, :_NDIM] + _diag(std)
        cross = cov[:, :, :_NDIM]  # P H^T, with H selecting the measured coordinates
        gain = np.linalg.solve(projected_cov, cross.transpose(0, 2, 1)).transpose(0, 2, 1)  # P H^T S^-1
        innovation = xyah - mean[:, :_NDIM]
        mean = mean + np.einsum("nij,nj->ni", gain, innovation)
        cov = cov - gain @ projected_cov @ gain.transpose(0, 2, 1)
        return mean, cov
