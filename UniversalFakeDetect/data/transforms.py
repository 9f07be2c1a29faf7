"""Image views for training (resize, augment, random crop, flip) and testing (resize, centre
crop). Randomness comes from an explicit generator, so views are reproducible and cacheable."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF  # noqa: N812

from UniversalFakeDetect.data.augment import AugmentConfig, augment


@dataclass(frozen=True)
class TransformConfig:
    """``load_size``: images are resized to this square first (if not already that size);
    ``crop_size``: then cropped to this (random in training, centred in testing)."""

    load_size: int = 256
    crop_size: int = 224
    flip: bool = True


def _resize(image: Image.Image, size: int) -> Image.Image:
    if image.size == (size, size):
        return image
    return image.resize((size, size), Image.Resampling.BILINEAR)


def _to_tensor(image: Image.Image) -> torch.Tensor:
    return TF.to_dtype(TF.pil_to_tensor(image), torch.float32, scale=True)


def train_view(
    image: Image.Image,
    rng: np.random.Generator,
    transform: TransformConfig,
    augmentation: AugmentConfig | None = None,
) -> torch.Tensor:
    """A random training view in [0, 1], [3, crop, crop]."""
    image = _resize(image.convert("RGB"), transform.load_size)
    if augmentation is not None:
        image = augment(image, rng, augmentation)
    limit = transform.load_size - transform.crop_size
    top, left = int(rng.integers(limit + 1)), int(rng.integers(limit + 1))
    image = image.crop((left, top, left + transform.crop_size, top + transform.crop_size))
    if transform.flip and rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return _to_tensor(image)


def eval_view(image: Image.Image, transform: TransformConfig) -> torch.Tensor:
    """The deterministic test view in [0, 1], [3, crop, crop]."""
    image = _resize(image.convert("RGB"), transform.load_size)
    offset = (transform.load_size - transform.crop_size) // 2
    image = image.crop((offset, offset, offset + transform.crop_size, offset + transform.crop_size))
    return _to_tensor(image)


def load_rgb(path: str) -> Image.Image:
    """Open an image as RGB, fully decoded (so truncated files fail here, not later)."""
    with Image.open(path) as image:
        image.load()
        return image.convert("RGB")
