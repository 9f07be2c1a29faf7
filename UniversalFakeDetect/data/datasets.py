"""A torch dataset over manifest rows, tolerant of unreadable images unless strict."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from datagen.manifest import ManifestRow
from rfd_common.errors import UserError
from UniversalFakeDetect.data.augment import AugmentConfig
from UniversalFakeDetect.data.transforms import (
    TransformConfig,
    eval_view,
    load_rgb,
    train_view,
)

ViewFn = Callable[[Image.Image, int], torch.Tensor]


class UnreadableImageError(UserError):
    """An image that cannot be decoded (corrupt, truncated, not an image); ``reason`` says why."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(
            f"{path}: cannot read image ({reason}); fix or replace the file, or run without "
            "--strict to skip unreadable images"
        )
        self.path = path
        self.reason = reason


def read_image(path: Path) -> Image.Image:
    """Decode ``path`` fully as 8-bit RGB or raise :class:`UnreadableImageError` naming it."""
    try:
        return load_rgb(str(path))
    except Exception as exc:  # a damaged file can fail anywhere in a decoder: it is unreadable
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise UnreadableImageError(Path(path), reason) from exc


class ManifestImageDataset(Dataset):
    """Items ``(image tensor, label, index, ok)`` for rows of a dataset root.

    ``make_view(image, index)`` turns the decoded image into a tensor. An unreadable image gives
    ``ok = False`` and a zero tensor (callers drop and count it), or raises with ``strict``.
    """

    def __init__(
        self,
        root: Path,
        rows: Sequence[ManifestRow],
        make_view: ViewFn,
        crop_size: int,
        strict: bool = False,
    ) -> None:
        self.root = Path(root)
        self.rows = list(rows)
        self.make_view = make_view
        self.crop_size = crop_size
        self.strict = strict

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int, bool]:
        row = self.rows[index]
        try:
            image = read_image(self.root / row.path)
        except UnreadableImageError:
            if self.strict:
                raise
            return torch.zeros(3, self.crop_size, self.crop_size), row.label, index, False
        return self.make_view(image, index), row.label, index, True


def eval_views(transform: TransformConfig) -> ViewFn:
    """The deterministic test view of every image."""
    return lambda image, index: eval_view(image, transform)


class EpochTrainViews:
    """Training views drawn from ``(seed, epoch, index)``: reproducible and resumable."""

    def __init__(
        self, transform: TransformConfig, augmentation: AugmentConfig | None, seed: int
    ) -> None:
        self.transform = transform
        self.augmentation = augmentation
        self.seed = seed
        self.epoch = 0

    def __call__(self, image: Image.Image, index: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        return train_view(image, rng, self.transform, self.augmentation)
