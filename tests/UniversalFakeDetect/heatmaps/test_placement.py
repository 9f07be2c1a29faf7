"""A crop's map goes back where the test view took the crop from; overlay and map files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from UniversalFakeDetect.data.transforms import TransformConfig, _resize, eval_view
from UniversalFakeDetect.heatmaps.output import unique_name, write_heatmap
from UniversalFakeDetect.heatmaps.placement import _window, crop_box, place_on_image

VIEWS = [
    ((120, 90), TransformConfig(48, 40, flip=False)),  # resized to 64 x 48, then cropped
    ((77, 131), TransformConfig(50, 33, flip=False)),  # odd margins: torchvision's rounding
    ((30, 50), TransformConfig(64, 56, flip=False)),  # enlarged
    ((70, 45), TransformConfig(256, 40, flip=False, resize=False)),  # native size
    ((25, 50), TransformConfig(256, 40, flip=False, resize=False)),  # padded across
]


@pytest.mark.parametrize(("size", "view"), VIEWS)
def test_the_window_is_the_test_views_crop(size: tuple[int, int], view: TransformConfig) -> None:
    """Cutting the computed window out of the resized image gives eval_view's crop exactly."""
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), np.uint8))
    rw, rh, left, top = _window(*size, view)
    resized = _resize(image, view.load_size) if view.resize else image
    assert resized.size == (rw, rh)
    crop = resized.crop((left, top, left + view.crop_size, top + view.crop_size))  # zero-padded
    expected = torch.from_numpy(np.asarray(crop, np.float32) / 255).permute(2, 0, 1)
    assert torch.allclose(eval_view(image, view), expected, atol=1e-6)  # 1 px off: ~0.3


@pytest.mark.parametrize(("size", "view"), VIEWS)
def test_a_flat_map_covers_the_box(size: tuple[int, int], view: TransformConfig) -> None:
    width, height = size
    heat = place_on_image(np.ones((view.crop_size,) * 2, np.float32), width, height, view)
    assert heat.shape == (height, width) and heat.min() >= 0 and heat.max() <= 1
    left, top, right, bottom = crop_box(width, height, view)
    assert 0 <= left < right <= width and 0 <= top < bottom <= height
    assert heat[top + 2 : bottom - 2, left + 2 : right - 2].min() == pytest.approx(1, abs=1e-6)
    outside = np.ones_like(heat, dtype=bool)
    outside[max(top - 2, 0) : bottom + 2, max(left - 2, 0) : right + 2] = False
    assert not outside.any() or heat[outside].max() == 0


def test_overlay_and_map_files(tmp_path: Path) -> None:
    image = Image.new("RGB", (30, 20), (100, 150, 200))
    heat = np.zeros((20, 30), np.float32)
    heat[5:10, 10:20] = 1.0
    png, npy = write_heatmap(tmp_path / "sub" / "a.jpg", image, heat, (5, 0, 25, 20))
    assert (png.name, npy.name) == ("a.jpg.png", "a.jpg.npy")
    assert np.array_equal(np.load(npy), heat)
    with Image.open(png) as written:
        pixels = np.asarray(written.convert("RGB")).astype(int)
    assert pixels.shape == (20, 30, 3)
    assert pixels[7, 15, 0] > pixels[7, 15, 2]  # hot: red over the blue-ish image
    assert pixels[15, 15, 2] > pixels[15, 15, 0]  # cold: blue
    assert (pixels[:, 0] == np.rint(np.array([100, 150, 200]) * 0.4)).all()  # outside: dimmed
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["a.jpg.npy", "a.jpg.png"]


def test_unique_names() -> None:
    used: set[str] = set()
    assert [unique_name(n, used) for n in ("a.jpg", "A.JPG", "a.jpg", "b.png")] == [
        "a.jpg", "A.JPG-2", "a.jpg-3", "b.png",
    ]  # fmt: skip
