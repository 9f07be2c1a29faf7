"""Which rows one of several processes (torchrun ranks) computes: features to extract, or its
share of every training and evaluation batch."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Shard:
    """Rank ``rank`` of ``world`` extraction processes; it owns rows ``rank, rank + world, ...``.

    Each rank writes its rows to its own files beside the cache (``shard-R-of-W.*``), never to
    the shared ones, so ranks on different machines can share a network folder. The rows it
    finished are merged into the cache by rank 0 at the end (under torchrun), or by the next
    process that opens the cache without a shard; a killed rank's finished rows are kept.
    """

    rank: int
    world: int

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world:
            raise ValueError(f"shard rank {self.rank} is not in 0..{self.world - 1}")

    @classmethod
    def from_env(cls) -> Shard | None:
        """The shard torchrun describes in ``RANK``/``WORLD_SIZE``; None for one process."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        return cls(int(os.environ.get("RANK", "0")), world) if world > 1 else None

    def rows(self, count: int) -> np.ndarray:
        return np.arange(self.rank, count, self.world)

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes checkpoints, states, logs and results."""
        return self.rank == 0

    @property
    def stem(self) -> str:
        return f"shard-{self.rank}-of-{self.world}"
