"""A torch dataset over manifest rows, tolerant of unreadable images unless strict.

Decoding an image is done once: the decoded pixels are kept in memory (:class:`DecodedImages`,
bounded by a byte budget, 1 GiB by default) and every later epoch only cuts its view out of
them. The views of this module (:class:`EpochTrainViews`, :func:`eval_views`) cut a crop and a
flip straight from the cached pixels when no resize or augmentation is needed, with the same
random draws and the same pixels as the PIL path (:mod:`UniversalFakeDetect.data.transforms`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as TF  # noqa: N812

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
# A view cut straight from decoded pixels (uint8 [H, W, 3]); None: use the PIL view instead.
PixelViewFn = Callable[[torch.Tensor, int], "torch.Tensor | None"]

DEFAULT_DECODED_CACHE_BYTES = 1 << 30  # 1 GiB of decoded pixels per dataset (per process)
_ENTRY_OVERHEAD = 200  # bytes counted per cached image besides its pixels (tensor object)


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


def decoded_pixels(image: Image.Image) -> torch.Tensor:
    """The pixels of an 8-bit RGB image as a uint8 tensor [H, W, 3] (a copy)."""
    return torch.from_numpy(np.array(image.convert("RGB"), dtype=np.uint8, copy=True))


class DecodedImages:
    """Decoded pixels by item index, up to ``budget_bytes`` (uint8, 3 bytes a pixel).

    Items are kept in the order they are first decoded until the budget is spent; later items
    are decoded every time they are asked for (no eviction: a random order of access would
    only churn). 1 GiB holds about 87,000 images of 64 x 64, or 5,400 of 256 x 256. The cache
    lives in the process that fills it: with DataLoader workers each worker holds its own copy
    (filled anew by every loader, whose workers end with it), so only ``num_workers`` 0 keeps
    it across epochs. Images that fail to decode are remembered with their reason, so a
    damaged file is read once. ``budget_bytes`` 0 turns the cache off.
    """

    def __init__(self, budget_bytes: int = DEFAULT_DECODED_CACHE_BYTES) -> None:
        if budget_bytes < 0:
            raise ValueError(f"budget_bytes {budget_bytes}: must be 0 or more")
        self.budget_bytes = budget_bytes
        self.used_bytes = 0
        self._pixels: dict[int, torch.Tensor] = {}
        self._failed: dict[int, str] = {}
        self.full = budget_bytes == 0  # a first image did not fit: nothing more is added

    def __len__(self) -> int:
        return len(self._pixels)

    def get(self, index: int) -> torch.Tensor | None:
        """The cached pixels of item ``index`` (do not modify them), or None."""
        return self._pixels.get(index)

    def failure(self, index: int) -> str | None:
        """Why item ``index`` failed to decode, if it did before."""
        return self._failed.get(index)

    def put(self, index: int, pixels: torch.Tensor) -> bool:
        """Keep ``pixels`` for item ``index`` if they fit in the budget; whether they were kept."""
        if index in self._pixels:
            return True
        size = pixels.numel() * pixels.element_size() + _ENTRY_OVERHEAD
        if self.full or self.used_bytes + size > self.budget_bytes:
            self.full = True
            return False
        self._pixels[index] = pixels
        self.used_bytes += size
        return True

    def put_failure(self, index: int, reason: str) -> None:
        """Remember that item ``index`` cannot be decoded."""
        if self.budget_bytes:
            self._failed[index] = reason

    def clear(self) -> None:
        self._pixels.clear()
        self._failed.clear()
        self.used_bytes = 0
        self.full = self.budget_bytes == 0


class ManifestImageDataset(Dataset):
    """Items ``(image tensor, label, index, ok)`` for rows of a dataset root.

    ``make_view(image, index)`` turns the decoded image into a tensor; when ``make_view`` also
    has a ``from_pixels(pixels, index)`` method (the views of this module do) it is tried first
    on the cached uint8 pixels [H, W, 3] and its tensor used unless it returns None. An
    unreadable image gives ``ok = False`` and a zero tensor (callers drop and count it), or
    raises with ``strict``.

    Every image is decoded once and its pixels kept in memory up to ``cache_bytes``
    (:class:`DecodedImages`: 1 GiB by default, per dataset and per process; with DataLoader
    workers each worker has its own copy; 0 decodes every time).
    """

    def __init__(
        self,
        root: Path,
        rows: Sequence[ManifestRow],
        make_view: ViewFn,
        crop_size: int,
        strict: bool = False,
        cache_bytes: int = DEFAULT_DECODED_CACHE_BYTES,
    ) -> None:
        self.root = Path(root)
        self.rows = list(rows)
        self.make_view = make_view
        self.crop_size = crop_size
        self.strict = strict
        self.decoded = DecodedImages(cache_bytes)

    def __len__(self) -> int:
        return len(self.rows)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (spawned DataLoader workers) without the decoded pixels: each worker fills
        its own cache rather than receiving up to the whole budget through a pipe."""
        state = dict(self.__dict__)
        state["decoded"] = DecodedImages(self.decoded.budget_bytes)
        return state

    def pixels(self, index: int) -> torch.Tensor:
        """The decoded uint8 pixels [H, W, 3] of item ``index`` (cached; do not modify them);
        :class:`UnreadableImageError` when the image cannot be decoded."""
        cached = self.decoded.get(index)
        if cached is not None:
            return cached
        path = self.root / self.rows[index].path
        reason = self.decoded.failure(index)
        if reason is not None:
            raise UnreadableImageError(path, reason)
        try:
            image = read_image(path)
        except UnreadableImageError as exc:
            self.decoded.put_failure(index, exc.reason)
            raise
        pixels = decoded_pixels(image)
        self.decoded.put(index, pixels)
        return pixels

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int, bool]:
        row = self.rows[index]
        try:
            pixels = self.pixels(index)
        except UnreadableImageError:
            if self.strict:
                raise
            return torch.zeros(3, self.crop_size, self.crop_size), row.label, index, False
        return self.view(pixels, index), row.label, index, True

    def view(self, pixels: torch.Tensor, index: int) -> torch.Tensor:
        """``make_view`` of the decoded ``pixels`` of item ``index``."""
        from_pixels: PixelViewFn | None = getattr(self.make_view, "from_pixels", None)
        if from_pixels is not None:
            tensor = from_pixels(pixels, index)
            if tensor is not None:
                return tensor
        return self.make_view(Image.fromarray(pixels.numpy()), index)


def _at_load_size(pixels: torch.Tensor, transform: TransformConfig) -> bool:
    """Whether the views' aspect-preserving resize leaves ``pixels`` as they are."""
    return min(pixels.shape[0], pixels.shape[1]) == transform.load_size


def _to_float(pixels_chw: torch.Tensor) -> torch.Tensor:
    """uint8 [3, h, w] -> float32 in [0, 1], as :func:`transforms._to_tensor` converts."""
    return TF.to_dtype(pixels_chw.contiguous(), torch.float32, scale=True)


class EvalViews:
    """The deterministic test view of every image (:func:`transforms.eval_view`)."""

    def __init__(self, transform: TransformConfig) -> None:
        self.transform = transform

    def __call__(self, image: Image.Image, index: int) -> torch.Tensor:
        return eval_view(image, self.transform)

    def from_pixels(self, pixels: torch.Tensor, index: int) -> torch.Tensor | None:
        """The same view cut from decoded pixels when no resize is needed; else None."""
        crop = self.transform.crop_size
        height, width = pixels.shape[0], pixels.shape[1]
        if crop > height or crop > width:
            return None  # zero padding: the PIL path
        if self.transform.resize and not _at_load_size(pixels, self.transform):
            return None
        return _to_float(TF.center_crop(pixels.permute(2, 0, 1), [crop, crop]))


def eval_views(transform: TransformConfig) -> EvalViews:
    """The deterministic test view of every image."""
    return EvalViews(transform)


class EpochTrainViews:
    """Training views drawn from ``(seed, epoch, index)``: reproducible and resumable."""

    def __init__(
        self, transform: TransformConfig, augmentation: AugmentConfig | None, seed: int
    ) -> None:
        self.transform = transform
        self.augmentation = augmentation
        self.seed = seed
        self.epoch = 0

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, index])

    def __call__(self, image: Image.Image, index: int) -> torch.Tensor:
        return train_view(image, self._rng(index), self.transform, self.augmentation)

    def from_pixels(self, pixels: torch.Tensor, index: int) -> torch.Tensor | None:
        """The same view as :meth:`__call__`, cut from decoded pixels with the same draws
        (crop offsets, then the flip), when there is neither a resize nor an augmentation
        to apply; else None."""
        if self.augmentation is not None and self.augmentation.active:
            return None
        if not _at_load_size(pixels, self.transform):
            return None
        rng = self._rng(index)
        crop = self.transform.crop_size
        height, width = pixels.shape[0], pixels.shape[1]
        top = int(rng.integers(height - crop + 1))
        left = int(rng.integers(width - crop + 1))
        view = pixels[top : top + crop, left : left + crop].permute(2, 0, 1)
        if self.transform.flip and rng.random() < 0.5:
            view = view.flip(-1)
        return _to_float(view)


def decoded_cache_note(dataset: ManifestImageDataset) -> str:
    """One line on what the decoded-image cache of ``dataset`` holds."""
    cache = dataset.decoded
    state = "full" if cache.full and cache.budget_bytes else "room left"
    return (
        f"decoded images cached: {len(cache)} of {len(dataset)} "
        f"({cache.used_bytes / 2**20:.1f} MiB of {cache.budget_bytes / 2**20:.0f} MiB, {state})"
    )
