"""Resizing an RGB image to the output square, by the named filter.

Every filter is Pillow's, with its support scaled to the reduction (no ``reducing_gap`` box
pre-reduction, whose effect would depend on the source size, which differs between reals and
fakes). For ``bicubic`` and ``bilinear`` the work is done by torch's antialiased uint8
kernels when a square image is reduced (every image in the default ``center_crop`` mode that
is larger than the output): they compute Pillow's filter (to one grey level, on under 1% of
the values: a parity test holds it) about five times faster. Where the two would differ more
(upscaling, or two different reduction factors, since Pillow rounds between its horizontal
and vertical passes), Pillow does the work.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from PIL import Image

RESAMPLING = {
    "lanczos": Image.Resampling.LANCZOS,
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "area": Image.Resampling.BOX,
}
TORCH_FILTERS = ("bicubic", "bilinear")


def resizer(resample: str) -> str:
    """What computes ``resample``, for ``dataset.json`` (no versions: those may differ)."""
    if resample in TORCH_FILTERS:
        return "torch antialiased uint8 (square reductions), Pillow (otherwise)"
    return "Pillow"


def uses_torch(source: tuple[int, int], size: int, resample: str) -> bool:
    """Whether resizing a ``source`` (width, height) image to ``size`` goes through torch."""
    width, height = source
    return resample in TORCH_FILTERS and width == height and width > size


def use_one_thread() -> None:
    """Make torch, when a conversion process first imports it, use one core (one per process)."""
    os.environ["OMP_NUM_THREADS"] = "1"


def _torch() -> Any:
    import torch  # imported on first use: a Pillow-only build does not pay for it

    return torch


def _pixels(image: Image.Image) -> Any:
    """An RGB image's pixels as a [1, C, H, W] uint8 tensor laid out channels-last.

    Pillow keeps RGB as four bytes a pixel, which its Arrow export shares without a copy
    (C = 4, the fourth byte padding); an image in several memory blocks (over Pillow's 16 MB
    block) cannot be shared and is copied (C = 3). The first three channels are the same.
    """
    import pyarrow

    torch = _torch()
    try:
        flat = torch.from_dlpack(pyarrow.array(image).values)
    except ValueError:  # "Image rows are not contiguous in memory"
        flat = torch.from_numpy(np.array(image)).reshape(-1)
    channels = flat.numel() // (image.width * image.height)
    return flat.view(image.height, image.width, channels).permute(2, 0, 1).unsqueeze(0)


def resize_square(image: Image.Image, size: int, resample: str) -> Image.Image:
    """RGB ``image`` resized to ``size`` x ``size`` with the filter named ``resample``."""
    if not uses_torch(image.size, size, resample):
        return image.resize((size, size), RESAMPLING[resample])
    torch = _torch()
    with torch.inference_mode():
        small = torch.nn.functional.interpolate(
            _pixels(image), size=(size, size), mode=resample, antialias=True
        )
    return Image.fromarray(small[0, :3].permute(1, 2, 0).contiguous().numpy(), "RGB")
