"""FFHQ-like lossless sources: the pixels, their PNGs, and the one JPEG a build must make of them
(the ``hf`` kind and the original's Kaggle PNG set both encode the lossless pixels once)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def face(seed: int, side: int) -> np.ndarray:
    """Smooth shapes plus noise (a PNG that a JPEG round trip would visibly change)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side]
    base = np.stack([(x * 255) // side, (y * 255) // side, ((x + y) * 127) // side], -1)
    return np.clip(base + rng.normal(0, 10, (side, side, 3)), 0, 255).astype(np.uint8)


PIXELS = {f"{i:05d}": face(i, 512 if i == 3 else 256) for i in range(4)}


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


RESAMPLE = ("--resample", "lanczos")


def expected_jpeg(pixels: np.ndarray) -> bytes:
    """Pillow directly: Lanczos to 256 when larger, JPEG quality 90, 4:2:0, baseline.

    Builds compared with it pass ``RESAMPLE`` (Lanczos is Pillow's alone, so the bytes match).
    """
    image = Image.fromarray(pixels)
    if image.size != (256, 256):
        image = image.resize((256, 256), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90, subsampling=2)
    return buffer.getvalue()
