"""Pictures for a self-contained page: saved PNG plots and image thumbnails as data URIs."""

from __future__ import annotations

import base64
import io
from pathlib import Path

from PIL import Image, UnidentifiedImageError

THUMBNAIL_PX = 128
"""The longest side of a thumbnail (images are never enlarged)."""

JPEG_QUALITY = 80

_WIDE_MODES = ("I", "F")  # 16- and 32-bit pixels: converted as the data loading converts them


def data_uri(payload: bytes, mime: str) -> str:
    """``payload`` as a ``data:`` URI (base64)."""
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def png_uri(path: Path) -> str | None:
    """The PNG file at ``path`` as a data URI; None when it is missing or not a PNG."""
    try:
        payload = Path(path).read_bytes()
    except OSError:
        return None
    if not payload.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    return data_uri(payload, "image/png")


def _to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB; wide grayscale (16-bit PNG, TIFF) scaled as the detectors see it."""
    if image.mode in _WIDE_MODES or image.mode.startswith("I;16"):
        from UniversalFakeDetect.data.transforms import to_rgb8  # torch: only for these modes

        return to_rgb8(image)
    return image.convert("RGB")


def jpeg_uri(image: Image.Image) -> str:
    """An RGB ``image`` as a JPEG data URI."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return data_uri(buffer.getvalue(), "image/jpeg")


def thumbnail(path: Path, size: int = THUMBNAIL_PX) -> tuple[str, int, int] | None:
    """A JPEG thumbnail of the image at ``path`` (longest side at most ``size``) as a data URI
    with its width and height; None when the file is missing or cannot be decoded."""
    try:
        with Image.open(path) as image:
            image.draft("RGB", (size, size))  # JPEG: decode at a reduced scale, much faster
            small = _to_rgb(image)
        small.thumbnail((size, size), Image.Resampling.LANCZOS)
        uri = jpeg_uri(small)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return None
    return uri, small.width, small.height
