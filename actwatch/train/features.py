"""Encode every crop of a dataset once with a frozen encoder and keep the features on disk.

The cache is keyed by the dataset's fingerprint (its sequence files), the encoder's weights and the
preprocessing (input size, mean, std), so a changed dataset or encoder never reuses stale features and
two runs with the same encoder share them. Layout of one entry::

    CACHE_DIR/<key>/features.npy    (total frames, D) float32, memory-mapped when read
    CACHE_DIR/<key>/index.json      {seq_id: [start row, frames]} + what the key was made of

An entry is written to a temporary folder and renamed into place, so a crash never leaves a half cache.

Example:
    >>> import tempfile
    >>> from actwatch.model.config import ModelConfig
    >>> from actwatch.model.networks import build_model
    >>> from actwatch.train.synthetic import write_motion_dataset
    >>> root = Path(tempfile.mkdtemp())
    >>> ds = write_motion_dataset(root / "ds", videos_per_class=1, n_frames=6, size=32)
    >>> encoder = build_model(ModelConfig(hidden_size=8, fc_size=4, pretrained=False), 2).frame_encoder()
    >>> spec = InputSpec(input_size=32)
    >>> cache = FeatureCache.build_or_load(ds, encoder, spec, root / "cache", device=torch.device("cpu"))
    >>> cache.features(ds.sequences[0].seq_id).shape
    (6, 1280)
    >>> FeatureCache.find(ds, encoder, spec, root / "cache").path == cache.path  # found again, not rebuilt
    True
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from actwatch.fileio import atomic_path
from actwatch.model.config import InputSpec
from actwatch.model.preprocess import preprocess_crops
from actwatch.train.dataset import DatasetIndex, SequenceRecord

log = logging.getLogger(__name__)


def module_hash(module: nn.Module) -> str:
    """sha256 over a module's state dict (names, dtypes, shapes and bytes)."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def cache_key(dataset: DatasetIndex, encoder: nn.Module, spec: InputSpec) -> str:
    h = hashlib.sha256()
    h.update(dataset.fingerprint().encode())
    h.update(module_hash(encoder).encode())
    h.update(json.dumps([list(spec.input_size), list(spec.mean), list(spec.std)]).encode())
    return h.hexdigest()[:24]


def _batches(dataset: DatasetIndex, records: Sequence[SequenceRecord], batch: int) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, crops) chunks of at most ``batch`` crops, in record order, across sequences."""
    pending: list[np.ndarray] = []
    start = row = 0
    for rec in records:
        frames = dataset.read_sequence(rec)
        for i in range(0, len(frames), batch):
            pending.append(frames[i : i + batch])
            row += len(pending[-1])
            if row - start >= batch:
                chunk = np.concatenate(pending)
                yield start, chunk
                start, pending = row, []
    if pending:
        yield start, np.concatenate(pending)


@torch.no_grad()
def encode_records(
    dataset: DatasetIndex,
    records: Sequence[SequenceRecord],
    encoder: nn.Module,
    spec: InputSpec,
    out: np.ndarray,
    *,
    device: torch.device,
    batch: int = 128,
    progress: bool = False,
) -> None:
    """Write the features of every frame of ``records`` (in order) into the rows of ``out``."""
    was_training = encoder.training
    encoder.eval()
    total = sum(r.frames for r in records)
    bar = tqdm(total=total, desc="encode", unit="crop", disable=not progress, dynamic_ncols=True)
    try:
        for start, crops in _batches(dataset, records, batch):
            x = torch.from_numpy(preprocess_crops(crops, spec)).to(device)
            out[start : start + len(crops)] = encoder(x).float().cpu().numpy()
            bar.update(len(crops))
    finally:
        bar.close()
        encoder.train(was_training)


@dataclass(frozen=True)
class FeatureCache:
    """Per-sequence features of a whole dataset (all splits), memory-mapped from disk.

    See the module's example.
    """

    path: Path
    rows: dict[str, tuple[int, int]]
    array: np.ndarray  # (total frames, D)

    @property
    def dim(self) -> int:
        return int(self.array.shape[1])

    def features(self, seq_id: str) -> np.ndarray:
        start, n = self.rows[seq_id]
        return self.array[start : start + n]

    @classmethod
    def load(cls, path: Path) -> FeatureCache:
        index = json.loads((path / "index.json").read_text())
        array = np.load(path / "features.npy", mmap_mode="r")
        return cls(path, {k: (int(a), int(b)) for k, (a, b) in index["rows"].items()}, array)

    @classmethod
    def find(cls, dataset: DatasetIndex, encoder: nn.Module, spec: InputSpec, cache_dir: Path) -> FeatureCache | None:
        """The cache entry for this dataset + encoder + spec, or None when it has not been built."""
        path = cache_dir / cache_key(dataset, encoder, spec)
        return cls.load(path) if (path / "index.json").is_file() else None

    @classmethod
    def build_or_load(
        cls,
        dataset: DatasetIndex,
        encoder: nn.Module,
        spec: InputSpec,
        cache_dir: Path,
        *,
        device: torch.device,
        batch: int = 128,
        progress: bool = False,
    ) -> FeatureCache:
        key = cache_key(dataset, encoder, spec)
        path = cache_dir / key
        if (path / "index.json").is_file():
            log.info("feature cache hit: %s", path)
            return cls.load(path)
        records = sorted(dataset.sequences, key=lambda r: r.seq_id)
        dim = feature_dim(encoder, spec, device)
        total = sum(r.frames for r in records)
        log.info("encoding %d crops of %d sequences into %s", total, len(records), path)
        with atomic_path(path) as tmp:
            tmp.mkdir()
            array = np.lib.format.open_memmap(tmp / "features.npy", mode="w+", dtype=np.float32, shape=(total, dim))
            encode_records(dataset, records, encoder, spec, array, device=device, batch=batch, progress=progress)
            array.flush()
            del array
            rows, start = {}, 0
            for r in records:
                rows[r.seq_id] = (start, r.frames)
                start += r.frames
            meta = {
                "rows": rows,
                "dataset": str(dataset.root),
                "input_size": list(spec.input_size),
                "mean": list(spec.mean),
                "std": list(spec.std),
                "dim": dim,
            }
            (tmp / "index.json").write_text(json.dumps(meta))
        return cls.load(path)


@torch.no_grad()
def feature_dim(encoder: nn.Module, spec: InputSpec, device: torch.device) -> int:
    was_training = encoder.training
    encoder.eval()
    h, w = spec.input_size
    dim = int(encoder(torch.zeros(1, 3, h, w, device=device)).shape[-1])
    encoder.train(was_training)
    return dim
