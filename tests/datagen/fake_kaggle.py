"""A stand-in for the Kaggle client behind the downloader interface, and the zips it serves.

``FFHQ`` and ``CELEBA`` are the catalog's Kaggle slugs (whichever Kaggle dataset the catalog
names for each source), so a :class:`FakeKaggle` keyed by them serves what a build asks for.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from datagen.catalog import REAL_SOURCES

FFHQ = next(s.origin for s in REAL_SOURCES if s.name == "ffhq")
CELEBA = next(s.origin for s in REAL_SOURCES if s.name == "celeba-hq")


def zip_bytes(files: dict[str, bytes]) -> bytes:
    """A zip holding ``files`` (name -> data) in order."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def jpeg(seed: int, size: tuple[int, int]) -> bytes:
    """A JPEG (quality 92) of random pixels, ``size`` = (width, height)."""
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


class FakeKaggle:
    """Serves ``datasets`` (slug -> zip bytes) as the Kaggle client would; records each call."""

    def __init__(self, datasets: dict[str, bytes]) -> None:
        self.datasets = datasets
        self.calls: list[str] = []

    def download(self, dataset: str, folder: Path) -> Path:
        self.calls.append(dataset)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{dataset.split('/')[-1]}.zip"
        path.write_bytes(self.datasets[dataset])
        return path
