"""The training and test views never distort an image: parity with UniversalFakeDetect's own
torchvision pipelines, and the square 256 px views unchanged from the square-resize code."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF_V1  # noqa: N812
from PIL import Image
from torchvision import transforms

from UniversalFakeDetect.data.transforms import TransformConfig, eval_view, train_view

# (width, height): 4:3, 3:4, one pixel off square both ways, odd sizes, the shorter side
# already at the load size, and (for the native view) smaller than the crop on one or both sides.
SIZES = [
    (320, 240),
    (240, 320),
    (257, 256),
    (256, 257),
    (301, 187),
    (187, 301),
    (255, 255),
    (256, 341),
    (223, 225),
    (100, 90),
]
SIZE_IDS = [f"{w}x{h}" for w, h in SIZES]


def noise_image(width: int, height: int, seed: int = 0) -> Image.Image:
    """Uniform RGB noise: the hardest case for interpolation and crop-offset parity."""
    rng = np.random.default_rng([seed, width, height])
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
@pytest.mark.parametrize(("load", "crop"), [(256, 224), (32, 28)])
def test_eval_view_is_the_originals_test_view(size: tuple[int, int], load: int, crop: int) -> None:
    """Reference: UniversalFakeDetect's test transform (data/datasets.py with isTrain off),
    torchvision's ``Compose([Resize(loadSize), CenterCrop(cropSize), ToTensor()])``."""
    image = noise_image(*size)
    original = transforms.Compose(
        [transforms.Resize(load), transforms.CenterCrop(crop), transforms.ToTensor()]
    )
    view = eval_view(image, TransformConfig(load_size=load, crop_size=crop, flip=False))
    assert view.shape == (3, crop, crop)
    assert np.allclose(view.numpy(), original(image).numpy(), atol=1e-6, rtol=0)


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
@pytest.mark.parametrize("crop", [224, 28])
def test_native_eval_view_is_validate_py(size: tuple[int, int], crop: int) -> None:
    """Reference: UniversalFakeDetect's validate.py transform, torchvision's
    ``Compose([CenterCrop(224), ToTensor()])`` at native size (zero-padded when smaller)."""
    image = noise_image(*size)
    original = transforms.Compose([transforms.CenterCrop(crop), transforms.ToTensor()])
    view = eval_view(image, TransformConfig(load_size=256, crop_size=crop, resize=False))
    assert view.shape == (3, crop, crop)
    assert np.allclose(view.numpy(), original(image).numpy(), atol=1e-6, rtol=0)


def assert_same_pixels(view: torch.Tensor, expected: np.ndarray) -> None:
    """``view`` shows exactly the 8-bit ``expected`` [h, w, 3] (as floats within 1e-7)."""
    pixels = expected.transpose(2, 0, 1)
    array = view.numpy()
    assert np.array_equal(np.rint(array * 255).astype(np.uint8), pixels)
    assert np.allclose(array, pixels / 255, atol=1e-7, rtol=0)


def previous_eval_view(image: Image.Image, load: int, crop: int) -> np.ndarray:
    """The toolkit's earlier test view, re-expressed: a ``load`` square, crop at
    ``(load - crop) // 2``."""
    if image.size != (load, load):
        image = image.resize((load, load), Image.Resampling.BILINEAR)
    array = np.asarray(image.convert("RGB"))
    offset = (load - crop) // 2
    return array[offset : offset + crop, offset : offset + crop]


def previous_train_view(
    image: Image.Image, rng: np.random.Generator, load: int, crop: int
) -> np.ndarray:
    """The toolkit's earlier training view without augmentation, re-expressed: a ``load``
    square, ``top``/``left`` drawn in ``[0, load - crop]``, a flip when ``random() < 0.5``."""
    if image.size != (load, load):
        image = image.resize((load, load), Image.Resampling.BILINEAR)
    array = np.asarray(image.convert("RGB"))
    top, left = int(rng.integers(load - crop + 1)), int(rng.integers(load - crop + 1))
    crop_array = array[top : top + crop, left : left + crop]
    if rng.random() < 0.5:
        crop_array = crop_array[:, ::-1]
    return crop_array


@pytest.mark.parametrize("resize", [True, False])
def test_square_256_eval_view_is_unchanged(resize: bool) -> None:
    """Reference: the earlier square-resize test view re-expressed above; on the 256 px images
    of the original data both the resized and the native view give exactly its result."""
    for seed in range(3):
        image = noise_image(256, 256, seed)
        view = eval_view(image, TransformConfig(load_size=256, crop_size=224, resize=resize))
        assert_same_pixels(view, previous_eval_view(image, 256, 224))


def test_square_256_train_view_is_unchanged() -> None:
    """Reference: the earlier square-resize training view re-expressed above, on the same
    generator draws (both flips occur among the seeds)."""
    transform = TransformConfig(load_size=256, crop_size=224, flip=True)
    for seed in range(8):
        image = noise_image(256, 256, seed)
        view = train_view(image, np.random.default_rng(seed), transform)
        assert_same_pixels(view, previous_train_view(image, np.random.default_rng(seed), 256, 224))


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_train_view_crops_inside_the_aspect_preserving_resize(size: tuple[int, int]) -> None:
    """Reference: UniversalFakeDetect's training order re-expressed (data/datasets.py:
    ``TF.resize(img, loadSize)``, ``RandomCrop``, ``RandomHorizontalFlip``) with the toolkit's
    generator draws: ``top = integers(h - crop + 1)``, ``left = integers(w - crop + 1)``, a flip
    when ``random() < 0.5``; no augmentation."""
    load, crop = 256, 224
    image = noise_image(*size)
    resized = np.asarray(TF_V1.resize(image, load))  # torchvision 1's shorter-side resize
    height, width = resized.shape[:2]
    assert min(height, width) == load
    assert max(height, width) == int(load * max(size) / min(size))  # aspect kept
    transform = TransformConfig(load_size=load, crop_size=crop, flip=True)
    tops, lefts, flips = set(), set(), set()
    for seed in range(10):
        view = train_view(image, np.random.default_rng(seed), transform)
        rng = np.random.default_rng(seed)
        top, left = int(rng.integers(height - crop + 1)), int(rng.integers(width - crop + 1))
        expected = resized[top : top + crop, left : left + crop]
        flip = rng.random() < 0.5
        if flip:
            expected = expected[:, ::-1]
        assert_same_pixels(view, expected)
        tops.add(top)
        lefts.add(left)
        flips.add(flip)
    assert flips == {True, False}
    if abs(width - height) > crop // 4:  # the crops reach beyond a squashed square's range
        assert max(lefts if width > height else tops) > load - crop
