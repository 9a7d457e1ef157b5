"""One process or several under ``torchrun``: device choice, process group, collective helpers.

``torchrun --nproc_per_node=N -m actwatch train ...`` sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; each
process then trains on its shard (DistributedSampler), gradients are averaged by
DistributedDataParallel, validation counts are summed across processes and only rank 0 writes files.
Without those variables everything runs in one process and the helpers do nothing.

Example:
    >>> ctx = setup_distributed("cpu")
    >>> ctx.world_size, ctx.is_main, ctx.device.type
    (1, True, 'cpu')
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from actwatch.errors import ConfigError

log = logging.getLogger(__name__)


def resolve_device(preference: str, local_rank: int = 0) -> torch.device:
    """'auto' -> the local GPU when there is one, else CPU; 'cuda' -> this process's GPU."""
    if preference == "auto":
        preference = "cuda" if torch.cuda.is_available() else "cpu"
    if preference.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {preference!r} asked for, but no CUDA GPU is available; use --device cpu")
        return torch.device(f"cuda:{local_rank}") if preference == "cuda" else torch.device(preference)
    if preference != "cpu":
        raise ConfigError(f"unknown device {preference!r}; use auto, cpu, cuda or cuda:N")
    return torch.device("cpu")


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job.

    Example:
        >>> DistContext(0, 1, 0, torch.device("cpu"), owns_group=False).is_main
        True
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool  # this context initialised the process group (and destroys it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return dist.is_available() and dist.is_initialized()

    def barrier(self) -> None:
        if self.distributed:
            if self.device.type == "cuda":
                dist.barrier(device_ids=[self.device.index or 0])
            else:
                dist.barrier()

    def all_reduce_sum(self, values: np.ndarray) -> np.ndarray:
        """Element-wise sum across processes (float64 on the wire: exact for counts)."""
        if not self.distributed:
            return values
        t = torch.as_tensor(np.asarray(values, np.float64), device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.cpu().numpy().astype(np.asarray(values).dtype)

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every process."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def close(self) -> None:
        if self.owns_group and self.distributed:
            dist.destroy_process_group()


def setup_distributed(device: str = "auto") -> DistContext:
    """Join the torchrun job described by the environment, or run alone when there is none."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return DistContext(0, 1, 0, resolve_device(device), owns_group=False)
    rank = int(os.environ["RANK"])
    world = int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    owns = False
    if not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
        owns = True
        log.info("process group: backend %s, rank %d of %d, device %s", backend, rank, world, dev)
    return DistContext(rank, world, local_rank, dev, owns_group=owns)
