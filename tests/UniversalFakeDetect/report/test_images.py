"""Thumbnails and embedded plots as data URIs."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
from PIL import Image

from UniversalFakeDetect.report.images import png_uri, thumbnail


def decoded(uri: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))


def test_thumbnail_keeps_the_aspect_and_never_enlarges(tmp_path: Path) -> None:
    Image.new("RGB", (300, 150), (10, 200, 30)).save(tmp_path / "wide.jpg")
    Image.new("L", (20, 60), 90).save(tmp_path / "small.png")
    uri, width, height = thumbnail(tmp_path / "wide.jpg")
    assert (width, height) == (128, 64) and decoded(uri).size == (128, 64)
    uri, width, height = thumbnail(tmp_path / "small.png")
    assert (width, height) == (20, 60) and decoded(uri).mode == "RGB"


def test_sixteen_bit_gray_is_scaled_not_clipped(tmp_path: Path) -> None:
    """Pillow's convert('RGB') would turn these 16-bit values into a white square."""
    values = (np.arange(64 * 64).reshape(64, 64) % 200).astype(np.uint16) * 257
    Image.fromarray(values).save(tmp_path / "deep.png")
    uri, _, _ = thumbnail(tmp_path / "deep.png")
    pixels = np.asarray(decoded(uri).convert("L"), dtype=float)
    assert pixels.mean() < 150


def test_unreadable_inputs_give_none(tmp_path: Path) -> None:
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    assert thumbnail(tmp_path / "broken.jpg") is None
    assert thumbnail(tmp_path / "absent.jpg") is None
    assert png_uri(tmp_path / "absent.png") is None
    assert png_uri(tmp_path / "broken.jpg") is None
    Image.new("RGB", (4, 4)).save(tmp_path / "plot.png")
    uri = png_uri(tmp_path / "plot.png")
    assert uri is not None and decoded(uri).format == "PNG"
