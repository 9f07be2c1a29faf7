"""Training augmentations of CNNDetection / UniversalFakeDetect: Gaussian blur and JPEG
re-compression, each with a probability, drawn from an explicit random generator so that a
given (seed, epoch or view, image) always gets the same augmentation."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

JPEG_METHODS = ("cv2", "pil")


@dataclass(frozen=True)
class AugmentConfig:
    """``blur_sig``/``jpg_qual``: two values = a uniform range, more = a set to choose from."""

    blur_prob: float = 0.0
    blur_sig: tuple[float, ...] = (0.0, 3.0)
    jpg_prob: float = 0.0
    jpg_method: tuple[str, ...] = JPEG_METHODS
    jpg_qual: tuple[int, ...] = (30, 100)

    def __post_init__(self) -> None:
        unknown = set(self.jpg_method) - set(JPEG_METHODS)
        if unknown:
            raise ValueError(f"unknown JPEG method(s) {sorted(unknown)}; choose from cv2, pil")

    @property
    def active(self) -> bool:
        return self.blur_prob > 0 or self.jpg_prob > 0


def _sample(values: Sequence[float], rng: np.random.Generator, integer: bool = False) -> float:
    if len(values) == 1:
        return values[0]
    if len(values) == 2:
        low, high = values
        return int(rng.integers(low, high + 1)) if integer else float(rng.uniform(low, high))
    return values[int(rng.integers(len(values)))]


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Blur each channel of an HxWx3 uint8 array."""
    out = np.empty_like(image)
    for channel in range(image.shape[2]):
        out[:, :, channel] = gaussian_filter(image[:, :, channel], sigma=sigma)
    return out


def jpeg_roundtrip(image: np.ndarray, quality: int, method: str) -> np.ndarray:
    """Encode an RGB uint8 array as JPEG with OpenCV or Pillow and decode it again."""
    if method == "cv2":
        import cv2

        ok, encoded = cv2.imencode(
            ".jpg", image[:, :, ::-1], [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)]
        )
        if not ok:
            raise RuntimeError("OpenCV could not encode a JPEG")
        return cv2.imdecode(encoded, cv2.IMREAD_COLOR)[:, :, ::-1].copy()
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB")).copy()


def augment(image: Image.Image, rng: np.random.Generator, config: AugmentConfig) -> Image.Image:
    """Blur with probability ``blur_prob``, then JPEG with probability ``jpg_prob``."""
    if not config.active:
        return image
    array = np.asarray(image.convert("RGB"))
    if rng.random() < config.blur_prob:
        array = gaussian_blur(array, _sample(config.blur_sig, rng))
    if rng.random() < config.jpg_prob:
        method = config.jpg_method[int(rng.integers(len(config.jpg_method)))]
        array = jpeg_roundtrip(array, int(_sample(config.jpg_qual, rng, integer=True)), method)
    return Image.fromarray(array)
