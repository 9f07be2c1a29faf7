"""Training under torchrun: the process group, sums over ranks, and predictions gathered from
every rank's share.

torchrun starts one process per GPU (or CPU slot) and describes it in ``RANK``/``WORLD_SIZE``
(:class:`~UniversalFakeDetect.features.shard.Shard`). The backend is NCCL on GPUs and gloo on
the CPU. When a rank dies, torchrun stops the others within seconds and exits non-zero; a rank
that hangs instead makes the others fail after ``timeout`` (a collective that waits longer
raises).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist

from UniversalFakeDetect.features.shard import Shard

DEFAULT_TIMEOUT = timedelta(minutes=30)


def init_process_group(device: str, timeout: timedelta = DEFAULT_TIMEOUT) -> None:
    """Join the job torchrun started (once): NCCL for a GPU ``device``, else gloo."""
    if dist.is_initialized():
        return
    if device.startswith("cuda"):
        torch.cuda.set_device(device)
    backend = "nccl" if device.startswith("cuda") else "gloo"
    dist.init_process_group(backend, timeout=timeout)


def end_process_group() -> None:
    """Leave the job (after a last barrier, so no rank leaves while another still sends)."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def sum_over_ranks(values: list[float], device: str | torch.device) -> list[float]:
    """The element-wise sum of ``values`` over all ranks (float64), on every rank."""
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.cpu().tolist()


def gather_shares(values: np.ndarray) -> np.ndarray:
    """Combine per-rank arrays in which each rank filled the items it owns and left NaN
    elsewhere: every item takes its owner's value (NaN stays NaN where the owner had none)."""
    parts: list[np.ndarray | None] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, np.asarray(values, dtype=np.float64))
    return np.fmax.reduce(np.stack(parts), axis=0)  # fmax ignores the NaN of non-owners


def union_over_ranks(items: set[int]) -> set[int]:
    """The union of every rank's ``items`` (e.g. the images each found unreadable in its
    share), on every rank."""
    parts: list[set[int] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, set(items))
    return set().union(*(part or set() for part in parts))


@contextmanager
def main_rank_first(shard: Shard | None) -> Iterator[None]:
    """Rank 0 runs the block first (e.g. generating a shared dataset), the others after it."""
    if shard is not None and not shard.is_main:
        dist.barrier()
    yield
    if shard is not None and shard.is_main:
        dist.barrier()


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Rank 0's buffers (BatchNorm running statistics) to every rank. DDP broadcasts them
    before each forward, so after an epoch's last step every rank holds its own: this makes
    the state every rank validates, tests and keeps the one rank 0 saves."""
    for buffer in module.buffers():
        dist.broadcast(buffer, src=0)
