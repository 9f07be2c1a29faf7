"""Grad-CAM maps: image-sized, in [0, 1], and where the evidence is (a bright patch)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tests.UniversalFakeDetect.heatmaps.tiny_models import PATCH_ARCH, bright_patch_detector
from UniversalFakeDetect.data.transforms import TransformConfig
from UniversalFakeDetect.heatmaps import targets
from UniversalFakeDetect.heatmaps.gradcam import GradCamExplainer, LogitModel
from UniversalFakeDetect.heatmaps.pipeline import image_heatmaps
from UniversalFakeDetect.heatmaps.targets import Target

# 120 x 90 images: shorter side to 48 (64 x 48), centre crop 40 at (12, 4); scale 1.875
VIEW = TransformConfig(load_size=48, crop_size=40, flip=False)
WIDTH, HEIGHT, PATCH = 120, 90, 22


@pytest.fixture
def patch_explainer(monkeypatch: pytest.MonkeyPatch) -> GradCamExplainer:
    monkeypatch.setitem(targets.TARGET_LAYERS, PATCH_ARCH, lambda net: Target(net.act, "act"))
    return GradCamExplainer(bright_patch_detector())


def patch_image(left: int, top: int) -> Image.Image:
    """Mid-grey, a dark stripe along the bottom of the crop, a white square at (left, top)."""
    pixels = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
    pixels[68:80, 25:95] = 10
    pixels[top : top + PATCH, left : left + PATCH] = 255
    return Image.fromarray(pixels)


def centre_of_mass(heat: np.ndarray) -> np.ndarray:
    """(x, y) of the map's mass, in image pixels."""
    ys, xs = np.indices(heat.shape)
    return np.array([(xs * heat).sum(), (ys * heat).sum()]) / heat.sum()


def test_logit_model_is_the_detector() -> None:
    detector = bright_patch_detector()
    batch = torch.rand(2, 3, 40, 40)
    with torch.no_grad():
        expected = detector(batch)
    assert torch.allclose(LogitModel(detector)(batch), expected)


def test_the_map_follows_the_bright_patch(patch_explainer: GradCamExplainer) -> None:
    corners = [(30, 12), (66, 40)]
    images = [patch_image(*corner) for corner in corners]
    maps = image_heatmaps(patch_explainer, images, VIEW, explain="fake")
    centres = []
    for (left, top), item in zip(corners, maps, strict=True):
        assert item.heat.shape == (HEIGHT, WIDTH) and item.heat.dtype == np.float32
        assert np.isfinite(item.heat).all() and item.heat.min() >= 0 and item.heat.max() <= 1
        assert item.explained == "fake" and item.prob_fake > 0.5 and item.grid == (10, 10)
        patch = np.zeros_like(item.heat, dtype=bool)  # the patch, one cell (7.5 px) wider
        patch[max(top - 8, 0) : top + PATCH + 8, max(left - 8, 0) : left + PATCH + 8] = True
        assert item.heat[patch].sum() > 0.95 * item.heat.sum()
        y, x = np.unravel_index(np.argmax(item.heat), item.heat.shape)
        assert left - 4 <= x < left + PATCH + 4 and top - 4 <= y < top + PATCH + 4
        centre = np.array([left + PATCH / 2, top + PATCH / 2])
        assert np.abs(centre_of_mass(item.heat) - centre).max() < 4
        centres.append(centre_of_mass(item.heat))
    moved = centres[1] - centres[0]
    assert np.abs(moved - np.subtract(corners[1], corners[0])).max() < 4
    assert maps[0].box == (22, 7, 98, 83)


def test_real_evidence_is_the_negated_logit(patch_explainer: GradCamExplainer) -> None:
    image = patch_image(30, 12)
    fake, real = (image_heatmaps(patch_explainer, [image], VIEW, explain=c)[0] for c in
                  ("fake", "real"))  # fmt: skip
    assert real.explained == "real"
    stripe = np.zeros_like(real.heat, dtype=bool)
    stripe[64:84, 20:100] = True
    assert real.heat[stripe].sum() > 0.95 * real.heat.sum()
    assert fake.heat[stripe].sum() < 0.05 * fake.heat.sum()
    # the verdict's class: the patch makes the image fake; a third as bright, it is real
    plain = Image.fromarray(np.asarray(image) // 3)
    verdicts = image_heatmaps(patch_explainer, [image, plain], VIEW, explain="verdict")
    assert [v.explained for v in verdicts] == ["fake", "real"]
    assert verdicts[1].prob_fake < 0.5
