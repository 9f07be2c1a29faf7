"""Real photographs that ship inside installed packages, and crops cut from them.

Each photo is split spatially: crops for ``train`` come from the left part, crops for ``val``
from the disjoint right strip, so no pixel of a validation image was seen in training.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

from rfd_common.errors import UserError

VAL_STRIP = 0.3  # fraction of each photo's width reserved for val crops


@dataclass(frozen=True)
class PhotoSource:
    """A real source of the demo dataset: a few packaged photographs."""

    name: str
    package: str  # "skimage" or "sklearn"
    files: tuple[str, ...]
    splits: tuple[str, ...]  # splits this source appears in


REAL_SOURCES: tuple[PhotoSource, ...] = (
    PhotoSource(
        "skimage-photos",
        "skimage",
        ("astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "rocket.jpg"),
        ("train", "val"),
    ),
    PhotoSource(
        "skimage-gray",
        "skimage",
        ("camera.png", "moon.png", "coins.png", "brick.png", "grass.png", "gravel.png"),
        ("train", "val"),
    ),
    PhotoSource("sklearn-photos", "sklearn", ("china.jpg", "flower.jpg"), ("train", "val")),
    # Only in val, like CelebA-HQ in the paper: a real domain the detector never saw.
    PhotoSource(
        "skimage-science",
        "skimage",
        ("hubble_deep_field.jpg", "ihc.png", "retina.jpg"),
        ("val",),
    ),
)


def _package_image_dir(package: str) -> Path:
    if package == "skimage":
        import skimage

        return Path(skimage.__file__).parent / "data"
    if package == "sklearn":
        import sklearn.datasets

        return Path(sklearn.datasets.__file__).parent / "images"
    raise ValueError(f"unknown package {package!r}")


@cache
def load_photo(package: str, name: str) -> np.ndarray:
    """A packaged photo as an RGB uint8 array [H, W, 3]."""
    path = _package_image_dir(package) / name
    if not path.is_file():
        raise UserError(
            f"{path}: sample photo missing; reinstall scikit-image and scikit-learn "
            "(`pip install -e .`), which ship the demo's real photographs"
        )
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def split_region(photo: np.ndarray, split: str) -> np.ndarray:
    """The part of ``photo`` that ``split`` may crop from (left for train, right strip for val)."""
    width = photo.shape[1]
    cut = round(width * (1 - VAL_STRIP))
    return photo[:, :cut] if split == "train" else photo[:, cut:]


def random_crop(
    region: np.ndarray, rng: np.random.Generator, min_side: int, max_side: int
) -> Image.Image:
    """A square crop, side log-uniform in [min_side, max_side], rotated by k*90, maybe flipped."""
    height, width = region.shape[:2]
    limit = min(height, width, max_side)
    low = min(min_side, limit)
    side = round(float(np.exp(rng.uniform(np.log(low), np.log(limit))))) if limit > low else low
    top = int(rng.integers(0, height - side + 1))
    left = int(rng.integers(0, width - side + 1))
    crop = np.rot90(region[top : top + side, left : left + side], k=int(rng.integers(4)))
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return Image.fromarray(np.ascontiguousarray(crop))
