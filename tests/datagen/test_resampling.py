"""The resize to the output square: torch's kernels against Pillow's own filters."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from datagen.resampling import resize_square, uses_torch

# The reference: Pillow's filters by their Pillow names, not the project's table.
PILLOW = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "lanczos": Image.Resampling.LANCZOS,
    "area": Image.Resampling.BOX,
}


def noise(seed: int, height: int, width: int) -> Image.Image:
    """Uniform noise: the content on which two implementations of a filter differ most."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def difference(ours: Image.Image, reference: Image.Image) -> np.ndarray:
    assert ours.size == reference.size and ours.mode == reference.mode == "RGB"
    return np.abs(np.asarray(ours, np.int16) - np.asarray(reference, np.int16))


@pytest.mark.parametrize("side", [257, 300, 512, 777, 1024, 2100])
@pytest.mark.parametrize("resample", ["bicubic", "bilinear"])
def test_square_reductions_by_torch_are_pillows_filter(side: int, resample: str) -> None:
    image = noise(side, side, side)
    assert uses_torch(image.size, 256, resample)
    diff = difference(
        resize_square(image, 256, resample), image.resize((256, 256), PILLOW[resample])
    )
    # (2100 px: over Pillow's 16 MB memory block, so the pixels are copied rather than shared.)
    # Pillow rounds its fixed-point sums differently: one grey level, on under 1% of the values
    # (measured up to 0.65% on noise of 257-2100 px). Another filter differs by tens of levels.
    assert diff.max() <= 1
    assert (diff > 0).mean() < 0.01


@pytest.mark.parametrize(
    ("height", "width"),
    [(200, 200), (255, 255), (300, 420), (700, 320), (257, 255), (256, 600)],
)
@pytest.mark.parametrize("resample", ["bicubic", "bilinear"])
def test_upscaling_and_unequal_factors_are_left_to_pillow(
    height: int, width: int, resample: str
) -> None:
    """Where torch's kernel is not Pillow's to a grey level (upscaling; different factors, as
    Pillow rounds between its two passes: up to 22 levels on noise), Pillow does the work."""
    image = noise(height + width, height, width)
    assert not uses_torch(image.size, 256, resample)
    reference = image.resize((256, 256), PILLOW[resample])
    assert resize_square(image, 256, resample).tobytes() == reference.tobytes()


@pytest.mark.parametrize("resample", ["lanczos", "area"])
def test_other_filters_are_pillows_exactly(resample: str) -> None:
    image = noise(1, 640, 640)
    assert not uses_torch(image.size, 256, resample)
    reference = image.resize((256, 256), PILLOW[resample])
    assert resize_square(image, 256, resample).tobytes() == reference.tobytes()


def test_a_square_already_at_the_size_is_not_resampled() -> None:
    image = noise(2, 256, 256)
    assert not uses_torch(image.size, 256, "bicubic")
    assert resize_square(image, 256, "bicubic").tobytes() == image.tobytes()


def test_shared_and_copied_pixels_give_the_same_image(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Arrow export (no copy, four bytes a pixel) and the copy give the same result."""
    import pyarrow

    image = noise(3, 1024, 1024)
    shared = resize_square(image, 256, "bicubic")

    def several_blocks(obj: object) -> object:
        raise ValueError("Image rows are not contiguous in memory.")

    monkeypatch.setattr(pyarrow, "array", several_blocks)
    assert resize_square(image, 256, "bicubic").tobytes() == shared.tobytes()
