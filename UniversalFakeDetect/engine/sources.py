"""Where a batch comes from: decoded images (backbone runs) or cached features (head only).

Both sources serve batches for a set of item indices, in an order drawn from a seed, and know how
to turn their inputs into logits. The training loop does not care which one it has.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader

from UniversalFakeDetect.data.datasets import ManifestImageDataset
from UniversalFakeDetect.features.cache import FeatureCache
from UniversalFakeDetect.features.shard import Shard
from UniversalFakeDetect.models.detector import Detector

NO_ITEMS = np.zeros(0, dtype=np.int64)


@dataclass
class Batch:
    inputs: torch.Tensor
    labels: torch.Tensor
    indices: np.ndarray  # item indices within the source
    # where each item sits in its global batch (the batch one process takes), and which
    # global batch of the epoch this is: what training draws dropout masks by
    positions: np.ndarray | None = None
    step: int = 0

    def global_positions(self) -> np.ndarray:
        return np.arange(len(self.indices)) if self.positions is None else self.positions


class BatchSource(Protocol):
    labels: np.ndarray
    unreadable: set[int]

    def __len__(self) -> int: ...

    def batches(
        self, indices: np.ndarray, batch_size: int, epoch: int, shuffle_seed: int | None
    ) -> Iterator[Batch]: ...

    def logits(self, detector: Detector, inputs: torch.Tensor) -> torch.Tensor: ...

    def features(self, detector: Detector, inputs: torch.Tensor) -> torch.Tensor: ...


def _order(indices: np.ndarray, shuffle_seed: int | None, epoch: int) -> np.ndarray:
    if shuffle_seed is None:
        return np.asarray(indices)
    return np.random.default_rng([shuffle_seed, epoch]).permutation(np.asarray(indices))


class ImageSource:
    """Batches of decoded images; unreadable images are dropped and remembered.

    Without workers (``num_workers`` 0) batches are assembled here, item by item, from the
    dataset's decoded-image cache (each image is decoded once, then only its view is cut every
    epoch); with workers a DataLoader spreads the decoding over them. Batches are handed to the
    model in ``memory_format`` (channels-last by default: the faster layout of CPU and GPU
    convolutions; the values are the same).
    """

    def __init__(
        self,
        dataset: ManifestImageDataset,
        device: str,
        num_workers: int = 0,
        memory_format: torch.memory_format = torch.channels_last,
    ):
        self.dataset = dataset
        self.device = device
        self.num_workers = num_workers
        self.memory_format = memory_format
        self.labels = np.array([r.label for r in dataset.rows])
        self.unreadable: set[int] = set()
        # under torchrun: this rank's share of every batch (see :meth:`steps`)
        self.shard: Shard | None = None

    def __len__(self) -> int:
        return len(self.dataset)

    def _item_batches(
        self, steps: list[np.ndarray]
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
        """What a DataLoader without workers yields, without its per-item machinery."""
        for step in steps:
            items = [self.dataset[int(i)] for i in step]
            images, labels, index, ok = zip(*items, strict=True)
            yield (
                torch.stack(images),
                torch.tensor(labels, dtype=torch.int64),
                torch.tensor(index, dtype=torch.int64),
                torch.tensor(ok, dtype=torch.bool),
            )

    def steps(self, order: np.ndarray, batch_size: int) -> list[np.ndarray]:
        """The items of each batch in ``order``: consecutive runs of ``batch_size`` (global
        batches), or with a :attr:`shard` its part ``rank::world`` of each (maybe empty)."""
        steps = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
        if self.shard is not None:
            steps = [step[self.shard.rank :: self.shard.world] for step in steps]
        return steps

    def batches(
        self, indices: np.ndarray, batch_size: int, epoch: int, shuffle_seed: int | None
    ) -> Iterator[Batch]:
        """One batch per step (:meth:`steps`), unreadable items dropped; one process skips
        batches left empty, a shard yields them too so that its ranks stay in step."""
        if hasattr(self.dataset.make_view, "epoch"):
            self.dataset.make_view.epoch = epoch  # type: ignore[attr-defined]
        order = _order(indices, shuffle_seed, epoch)
        steps = self.steps(order, batch_size)
        full = [step.tolist() for step in steps if len(step)]
        loader: Iterable = (
            DataLoader(self.dataset, batch_sampler=full, num_workers=self.num_workers)
            if self.num_workers
            else self._item_batches([np.asarray(step) for step in full])
        )
        loaded = iter(loader)
        for number, step in enumerate(steps):
            positions = self._positions(len(order), batch_size, number)
            if len(step):
                images, labels, index, ok = next(loaded)
                self.unreadable.update(index[~ok].tolist())
                if ok.any():
                    inputs = images if bool(ok.all()) else images[ok]
                    kept = positions[ok.numpy()]
                    yield Batch(
                        self._to_device(inputs), labels[ok], index[ok].numpy(), kept, number
                    )
                    continue
            if self.shard is not None:
                yield self.empty_batch(number)

    def _positions(self, items: int, batch_size: int, number: int) -> np.ndarray:
        """Where this rank's share of global batch ``number`` sits in that batch."""
        size = min(batch_size, items - number * batch_size)
        positions = np.arange(size)
        return positions if self.shard is None else positions[self.shard.rank :: self.shard.world]

    def empty_batch(self, step: int = 0) -> Batch:
        """A batch of no image (a rank's share of a step can be empty)."""
        size = self.dataset.crop_size
        images = torch.zeros(0, 3, size, size)
        empty = torch.zeros(0, dtype=torch.int64)
        return Batch(self._to_device(images), empty, NO_ITEMS, NO_ITEMS, step)

    def _to_device(self, images: torch.Tensor) -> torch.Tensor:
        return images.to(self.device).contiguous(memory_format=self.memory_format)

    def logits(self, detector: Detector, inputs: torch.Tensor) -> torch.Tensor:
        return detector(inputs)

    def features(self, detector: Detector, inputs: torch.Tensor) -> torch.Tensor:
        return detector.features(inputs)


class FeatureSource:
    """Batches of cached backbone features; view 0 for evaluation, a random augmented view per
    image and epoch for training when the cache has them."""

    def __init__(
        self, cache: FeatureCache, labels: np.ndarray, device: str, train_views: bool = False
    ):
        self.cache = cache
        self.labels = np.asarray(labels)
        self.device = device
        self.train_views = train_views and cache.views > 1
        self.data = cache.features()
        first = np.asarray(self.data[0, :, 0], dtype=np.float32)
        self.unreadable = set(np.flatnonzero(~np.isfinite(first)).tolist())

    def __len__(self) -> int:
        return len(self.labels)

    def _views(self, indices: np.ndarray, epoch: int, seed: int | None) -> np.ndarray:
        if not self.train_views or seed is None:
            return np.zeros(len(indices), dtype=int)
        rng = np.random.default_rng([seed, epoch, 1])
        return rng.integers(1, self.cache.views, size=len(indices))

    def batches(
        self, indices: np.ndarray, batch_size: int, epoch: int, shuffle_seed: int | None
    ) -> Iterator[Batch]:
        order = _order(indices, shuffle_seed, epoch)
        if self.unreadable:
            order = np.array([i for i in order if i not in self.unreadable], dtype=int)
        views = self._views(order, epoch, shuffle_seed)
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            rows = np.asarray(self.data[views[start : start + len(index)], index], np.float32)
            yield Batch(
                torch.from_numpy(rows).to(self.device),
                torch.from_numpy(self.labels[index]),
                index,
                step=start // batch_size,
            )

    def logits(self, detector: Detector, inputs: torch.Tensor) -> torch.Tensor:
        return detector.head(inputs)

    def features(self, detector: Detector, inputs: torch.Tensor) -> torch.Tensor:
        return inputs


def default_cache_dir() -> Path:
    """``$RFD_CACHE_DIR/features`` (see datagen.demo.cache for the cache root)."""
    from datagen.demo.cache import cache_root

    return cache_root() / "features"
