"""The one preprocessing every image goes through: resize to a square, encode as JPEG.

Real and fake images must reach disk by the same resize and the same encoder settings, or a
detector learns the preprocessing instead of the generator. The settings are recorded in the
dataset's ``dataset.json``.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass

import PIL
from PIL import Image

from datagen.resampling import RESAMPLING, resize_square, resizer

SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}


@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes a ``size`` x ``size`` JPEG.

    ``resize``: ``stretch`` (the whole image, aspect ratio not kept) or ``center_crop`` (crop the
    largest centred square, then resize). ``resample`` is the Pillow filter, applied at full
    strength to every image (see :mod:`datagen.resampling`: torch computes ``bicubic`` and
    ``bilinear`` reductions of square images). ``subsampling`` is the JPEG
    chroma subsampling (``4:2:0`` or ``4:4:4``).
    """

    size: int = 256
    resize: str = "center_crop"
    resample: str = "bicubic"
    jpeg_quality: int = 90
    subsampling: str = "4:2:0"

    def __post_init__(self) -> None:
        if self.resize not in ("stretch", "center_crop"):
            raise ValueError(f"resize must be 'stretch' or 'center_crop', got {self.resize!r}")
        if self.resample not in RESAMPLING:
            raise ValueError(f"resample must be one of {sorted(RESAMPLING)}, got {self.resample!r}")
        if self.subsampling not in SUBSAMPLING:
            raise ValueError(f"subsampling must be one of {sorted(SUBSAMPLING)}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError("jpeg_quality must be in 1..100")

    def to_dict(self) -> dict[str, object]:
        """Settings plus the encoder library version, for ``dataset.json``."""
        return {
            **asdict(self),
            "resizer": resizer(self.resample),
            "encoder": f"Pillow {PIL.__version__}",
        }

    def resize_image(self, image: Image.Image) -> Image.Image:
        """RGB ``image`` resized to ``size`` x ``size`` by the recorded mode and filter.

        Steps that would not change the pixels (converting an RGB image to RGB, cropping a
        square to itself) are skipped rather than run as copies: the result is the same.
        """
        if image.mode != "RGB":
            image = image.convert("RGB")
        if self.resize == "center_crop" and image.width != image.height:
            side = min(image.size)
            left = (image.width - side) // 2
            top = (image.height - side) // 2
            image = image.crop((left, top, left + side, top + side))
        if image.size != (self.size, self.size):
            image = resize_square(image, self.size, self.resample)
        return image

    def encode(self, image: Image.Image) -> bytes:
        """JPEG bytes of an image that already has the target size (no resizing here)."""
        if image.size != (self.size, self.size):
            raise ValueError(f"image is {image.size}, expected {self.size}x{self.size}")
        if image.mode != "RGB":
            image = image.convert("RGB")
        buffer = io.BytesIO()
        image.save(
            buffer,
            format="JPEG",
            quality=self.jpeg_quality,
            subsampling=SUBSAMPLING[self.subsampling],
            optimize=False,
            progressive=False,
        )
        return buffer.getvalue()

    def convert(self, image: Image.Image) -> bytes:
        """Resize then encode: the full preprocessing of one source image."""
        return self.encode(self.resize_image(image))
