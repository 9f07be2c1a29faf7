"""Image transforms of training (random crop, flip) and testing (centre crop)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image
from torchvision.transforms import v2 as T  # noqa: N812


@dataclass(frozen=True)
class TransformConfig:
    """``load_size``: images are resized to this square first (if not already that size);
    ``crop_size``: then cropped to this (random in training, centred in testing)."""

    load_size: int = 256
    crop_size: int = 224
    flip: bool = True


def _resize(load_size: int) -> T.Transform:
    return T.Resize((load_size, load_size), interpolation=T.InterpolationMode.BILINEAR)


def train_transform(config: TransformConfig) -> T.Compose:
    steps: list[T.Transform] = [T.ToImage(), _resize(config.load_size)]
    steps.append(T.RandomCrop(config.crop_size))
    if config.flip:
        steps.append(T.RandomHorizontalFlip())
    steps.append(T.ToDtype(torch.float32, scale=True))
    return T.Compose(steps)


def test_transform(config: TransformConfig) -> T.Compose:
    return T.Compose(
        [
            T.ToImage(),
            _resize(config.load_size),
            T.CenterCrop(config.crop_size),
            T.ToDtype(torch.float32, scale=True),
        ]
    )


def load_rgb(path: str) -> Image.Image:
    """Open an image as RGB, fully decoded (so truncated files fail here, not later)."""
    with Image.open(path) as image:
        image.load()
        return image.convert("RGB")
