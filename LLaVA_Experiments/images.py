"""Reading dataset images: RGB pixels, or only the size from the header; clear errors."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from rfd_common.errors import UserError


def load_image(root: Path, relative: str, what: str = "image") -> Image.Image:
    """Open ``root/relative`` as RGB; a missing or unreadable file is a :class:`UserError`."""
    path = Path(root) / relative
    if not path.is_file():
        raise UserError(f"{what} '{relative}' not found under {root}")
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except OSError as exc:
        raise UserError(f"{what} '{relative}': cannot read the image ({exc})") from exc


def image_size(root: Path, relative: str) -> tuple[int, int]:
    """``(height, width)`` of an image file, read from its header (the pixels stay unread)."""
    try:
        with Image.open(Path(root) / relative) as image:
            width, height = image.size
    except OSError as exc:
        raise UserError(f"image '{relative}': cannot read the image ({exc})") from exc
    return height, width
