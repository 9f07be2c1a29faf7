"""Augmentations and views: reproducible from their generator, the original's operations."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from UniversalFakeDetect.data.augment import AugmentConfig, augment, gaussian_blur, jpeg_roundtrip
from UniversalFakeDetect.data.transforms import TransformConfig, eval_view, train_view


@pytest.fixture
def image() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))


def test_same_generator_state_gives_the_same_view(image: Image.Image) -> None:
    config = AugmentConfig(blur_prob=0.5, jpg_prob=0.5)
    transform = TransformConfig(load_size=36, crop_size=32)
    views = [
        train_view(image, np.random.default_rng([1, 2, 3]), transform, config) for _ in range(2)
    ]
    other = train_view(image, np.random.default_rng([1, 2, 4]), transform, config)
    assert views[0].shape == (3, 32, 32)
    assert np.array_equal(views[0].numpy(), views[1].numpy())
    assert not np.array_equal(views[0].numpy(), other.numpy())


def test_eval_view_is_the_centre_crop(image: Image.Image) -> None:
    view = eval_view(image, TransformConfig(load_size=40, crop_size=30))
    expected = np.asarray(image)[5:35, 5:35].transpose(2, 0, 1) / 255.0
    assert np.allclose(view.numpy(), expected, atol=1e-6)


def test_probabilities_zero_and_one(image: Image.Image) -> None:
    rng = np.random.default_rng(0)
    assert augment(image, rng, AugmentConfig()) is image
    always = AugmentConfig(blur_prob=1.0, blur_sig=(2.0,), jpg_prob=0.0)
    blurred = np.asarray(augment(image, rng, always))
    assert np.array_equal(blurred, gaussian_blur(np.asarray(image), 2.0))


@pytest.mark.parametrize("method", ["cv2", "pil"])
def test_jpeg_roundtrip_changes_pixels_less_at_high_quality(
    image: Image.Image, method: str
) -> None:
    array = np.asarray(image).astype(int)
    low = np.abs(jpeg_roundtrip(np.asarray(image), 30, method).astype(int) - array).mean()
    high = np.abs(jpeg_roundtrip(np.asarray(image), 95, method).astype(int) - array).mean()
    assert 0 < high < low


def test_unknown_jpeg_method() -> None:
    with pytest.raises(ValueError, match="cv3"):
        AugmentConfig(jpg_method=("cv3",))
