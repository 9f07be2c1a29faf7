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
    """``load_size``: the shorter side is resized to this first, keeping the aspect ratio (as
    UniversalFakeDetect's ``Resize(loadSize)``); ``crop_size``: then a square of this side is
    cropped (random in training, centred in testing). ``resize=False`` is the original's
    validation view: a centre crop at native size, no resize (zero-padded where the image is
    smaller than the crop, as torchvision's ``CenterCrop``)."""

    load_size: int = 256
    crop_size: int = 224
    flip: bool = True
    resize: bool = True


def _resize(image: Image.Image, size: int) -> Image.Image:
    """The shorter side to ``size``, the longer in proportion (torchvision's rounding down)."""
    if min(image.size) == size:
        return image
    return TF.resize(image, size, interpolation=TF.InterpolationMode.BILINEAR)


def _to_tensor(image: Image.Image) -> torch.Tensor:
    return TF.to_dtype(TF.pil_to_tensor(image), torch.float32, scale=True)


def train_view(
    image: Image.Image,
    rng: np.random.Generator,
    transform: TransformConfig,
    augmentation: AugmentConfig | None = None,
) -> torch.Tensor:
    """A random training view in [0, 1], [3, crop, crop]: resize, augment, crop, flip."""
    image = _resize(image.convert("RGB"), transform.load_size)
    if augmentation is not None:
        image = augment(image, rng, augmentation)
    crop = transform.crop_size
    top = int(rng.integers(image.height - crop + 1))
    left = int(rng.integers(image.width - crop + 1))
    image = image.crop((left, top, left + crop, top + crop))
    if transform.flip and rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return _to_tensor(image)


def eval_view(image: Image.Image, transform: TransformConfig) -> torch.Tensor:
    """The deterministic test view in [0, 1], [3, crop, crop]: resize (unless
    ``transform.resize`` is off), then the centre crop."""
    image = image.convert("RGB")
    if transform.resize:
        image = _resize(image, transform.load_size)
    image = TF.center_crop(image, [transform.crop_size, transform.crop_size])
    return _to_tensor(image)


_SIXTEEN_BIT_GRAY = ("I;16", "I;16L", "I;16B", "I;16N")


def _tiff_tag(image: Image.Image, tag: int, default: int) -> int:
    """A TIFF tag's first value (``default`` when absent or not a TIFF)."""
    value = getattr(image, "tag_v2", {}).get(tag, default)
    return int(value[0] if isinstance(value, tuple) else value)


def _high_bit_gray(image: Image.Image) -> np.ndarray:
    """A 16/32-bit grayscale image's values in [0, 255] (float), white at its full scale.

    ``I;16*`` is unsigned 16-bit. ``I`` holds 32-bit signed integers; what they span is the
    file's: a TIFF declares its bits per sample (258) and sample format (339: 1 unsigned,
    2 signed; Pillow reads unsigned 32-bit as signed, so those are reinterpreted), other
    formats (16-bit PGM...) put 16-bit values there.
    """
    array = np.asarray(image)
    if image.mode in _SIXTEEN_BIT_GRAY:
        return array.astype(np.float64) * (255.0 / 65535)
    bits = _tiff_tag(image, 258, 16)
    signed = _tiff_tag(image, 339, 1) == 2
    if bits == 32 and not signed:
        array = array.astype(np.int32).view(np.uint32)
    full_scale = 2 ** (bits - 1 if signed else bits) - 1
    return array.astype(np.float64) * (255.0 / full_scale)


def to_rgb8(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGB showing the same picture, high bit depths included.

    Pillow's own ``convert("RGB")`` clips 16-bit grayscale (PNG, TIFF, PGM: modes ``I;16*``,
    ``I``) to 255, a white square; those are scaled to their full scale instead, so a 16-bit
    image stored as ``v * 257`` decodes to the 8-bit ``v``. Float images (``F``) are taken as
    [0, 1] when their values lie there, else as [0, 255]. 16-bit RGB(A) files already open as
    8-bit (the high byte) in Pillow.
    """
    if image.mode in _SIXTEEN_BIT_GRAY or image.mode == "I":
        array = _high_bit_gray(image)
    elif image.mode == "F":
        array = np.asarray(image, dtype=np.float64)
        if np.nanmax(array, initial=0.0) <= 1.0:
            array = array * 255.0
    else:
        return image.convert("RGB")
    gray = np.clip(np.rint(np.nan_to_num(array)), 0, 255).astype(np.uint8)
    return Image.fromarray(gray).convert("RGB")


def load_rgb(path: str) -> Image.Image:
    """Open an image as 8-bit RGB, fully decoded (so truncated files fail here, not later)."""
    with Image.open(path) as image:
        image.load()
        return to_rgb8(image)
