"""Training windows: ``seq_len`` frames cut from longer sequences, as features or as pixels.

Training takes a random offset, evaluation the centred window
(:func:`actwatch.model.windows.window_indices`); shorter sequences are looped or padded with their last
frame. Randomness is drawn from ``(seed, epoch, index)``, so an epoch is the same whatever the number
of DataLoader workers, and a resumed run continues exactly.

Example:
    >>> feats = [np.zeros((20, 4), np.float32), np.ones((3, 4), np.float32)]
    >>> ds = FeatureWindows(feats, [0, 1], 8, train=True, windows_per_sequence=2)
    >>> len(ds), tuple(ds[3][0].shape), ds[3][1]
    (4, (8, 4), 1)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from actwatch.model.config import InputSpec
from actwatch.model.preprocess import preprocess_crops
from actwatch.model.windows import window_indices
from actwatch.train.config import AugmentConfig
from actwatch.train.dataset import DatasetIndex, SequenceRecord


def augment_window(window: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """One random flip / resized crop / colour jitter applied identically to every frame of ``window``.

    ``window`` is ``(T, H, W, 3)`` uint8 BGR; the result has the same shape and dtype.
    """
    t, h, w, _ = window.shape
    out = window
    lo, hi = cfg.crop_scale
    if lo < 1.0:  # (1, 1) turns the crop off
        area = rng.uniform(lo, hi)
        ratio = float(np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3))))
        cw = round(min(1.0, np.sqrt(area * ratio)) * w)
        ch = round(min(1.0, np.sqrt(area / ratio)) * h)
        cw, ch = max(1, cw), max(1, ch)
        x0 = int(rng.integers(0, w - cw + 1))
        y0 = int(rng.integers(0, h - ch + 1))
        if (cw, ch) != (w, h):
            out = np.stack(
                [cv2.resize(f[y0 : y0 + ch, x0 : x0 + cw], (w, h), interpolation=cv2.INTER_LINEAR) for f in out]
            )
    if cfg.hflip and rng.random() < 0.5:
        out = out[:, :, ::-1]
    j = cfg.color_jitter
    if j > 0:
        brightness, contrast, saturation = rng.uniform(1 - j, 1 + j, 3)
        x = out.astype(np.float32) * brightness
        gray = x @ np.array([0.114, 0.587, 0.299], np.float32)  # BGR luma
        x = (x - gray.mean()) * contrast + gray.mean()
        gray = x @ np.array([0.114, 0.587, 0.299], np.float32)
        x = gray[..., None] + (x - gray[..., None]) * saturation
        out = np.clip(x, 0, 255).astype(np.uint8)
    assert out.shape == (t, h, w, 3)
    return np.ascontiguousarray(out)


@dataclass(frozen=True)
class WindowSampling:
    """How a dataset picks its windows: training (random offsets, ``windows_per_sequence`` per
    sequence and epoch) or evaluation (one centred window), short sequences, the shuffled control."""

    train: bool
    short_policy: Literal["loop", "pad"] = "loop"
    shuffle_frames: bool = False
    windows_per_sequence: int = 1
    seed: int = 0


class _Windows(Dataset[tuple[torch.Tensor, int]]):
    """What the two datasets share: which window of which sequence, for an item and epoch."""

    def __init__(self, lengths: Sequence[int], labels: Sequence[int], seq_len: int, sampling: WindowSampling) -> None:
        self.lengths = list(lengths)
        self.labels = list(labels)
        self.seq_len = seq_len
        self.sampling = sampling
        self.windows_per_sequence = sampling.windows_per_sequence if sampling.train else 1
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """New random windows for each epoch (training); evaluation windows never change."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths) * self.windows_per_sequence

    def pick(self, item: int) -> tuple[int, np.ndarray, np.random.Generator]:
        """The sequence of ``item``, its window's frame indices and the item's random generator."""
        s = self.sampling
        seq = item % len(self.lengths)
        # Evaluation randomness (the shuffled control) is the same in every epoch.
        rng = np.random.default_rng((abs(s.seed), self.epoch + 1 if s.train else 0, item))
        offset: Literal["random", "center"] = "random" if s.train else "center"
        idx = window_indices(self.lengths[seq], self.seq_len, offset=offset, short_policy=s.short_policy, rng=rng)
        if s.shuffle_frames:
            idx = rng.permutation(idx)
        return seq, idx, rng

    def __getitem__(self, item: int) -> tuple[torch.Tensor, int]:
        seq, idx, rng = self.pick(item)
        return self.window(seq, idx, rng), self.labels[seq]

    def window(self, seq: int, idx: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        """The model input of frames ``idx`` of sequence ``seq``."""
        raise NotImplementedError


class FeatureWindows(_Windows):
    """Windows of cached encoder features: items are ``((seq_len, D) float32, label)``.

    Example:
        >>> feats = [np.zeros((12, 4), np.float32)]
        >>> x, y = FeatureWindows(feats, [1], 8, train=False)[0]
        >>> tuple(x.shape), y
        ((8, 4), 1)
    """

    def __init__(
        self,
        features: Sequence[np.ndarray],
        labels: Sequence[int],
        seq_len: int,
        *,
        train: bool,
        short_policy: Literal["loop", "pad"] = "loop",
        shuffle_frames: bool = False,
        windows_per_sequence: int = 1,
        seed: int = 0,
    ) -> None:
        self.features = list(features)
        sampling = WindowSampling(train, short_policy, shuffle_frames, windows_per_sequence, seed)
        super().__init__([len(f) for f in self.features], labels, seq_len, sampling)

    def window(self, seq: int, idx: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.features[seq][idx], np.float32))


class PixelWindows(_Windows):
    """Windows of crops read from the dataset, augmented, preprocessed: ``((T, 3, H, W), label)``.

    Example:
        >>> import tempfile, pathlib
        >>> from actwatch.train.synthetic import write_motion_dataset
        >>> ds = write_motion_dataset(pathlib.Path(tempfile.mkdtemp()), videos_per_class=2, n_frames=10, size=32)
        >>> PixelWindows(ds, ds.sequences, InputSpec(seq_len=8, input_size=32), train=False)[0][0].shape
        torch.Size([8, 3, 32, 32])
    """

    def __init__(
        self,
        dataset: DatasetIndex,
        records: Sequence[SequenceRecord],
        spec: InputSpec,
        *,
        train: bool,
        augment: AugmentConfig | None = None,
        short_policy: Literal["loop", "pad"] = "loop",
        shuffle_frames: bool = False,
        windows_per_sequence: int = 1,
        seed: int = 0,
    ) -> None:
        self.dataset = dataset
        self.records = list(records)
        self.spec = spec
        self.augment = augment if train and augment is not None and augment.enabled else None
        sampling = WindowSampling(train, short_policy, shuffle_frames, windows_per_sequence, seed)
        labels = [dataset.label_index(r.label) for r in self.records]
        super().__init__([r.frames for r in self.records], labels, spec.seq_len, sampling)

    def window(self, seq: int, idx: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        rec = self.records[seq]
        path = self.dataset.root / rec.path
        if path.suffix == ".npy":
            frames = np.load(path, mmap_mode="r", allow_pickle=False)  # reads only the window's frames
            if len(frames) != rec.frames:
                raise ValueError(f"{path}: {len(frames)} frames on disk, index says {rec.frames}")
        else:
            frames = self.dataset.read_sequence(rec)
        window = np.ascontiguousarray(frames[idx])
        if self.augment is not None:
            window = augment_window(window, self.augment, rng)
        return torch.from_numpy(preprocess_crops(window, self.spec))
