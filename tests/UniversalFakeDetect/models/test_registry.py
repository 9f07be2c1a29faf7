"""The --arch registry: every arch builds with random weights at its documented width."""

from __future__ import annotations

import pytest
import torch

from rfd_common.errors import UserError
from UniversalFakeDetect.models.registry import ARCHS, build_backbone, resolve_arch

DOCUMENTED_WIDTHS = {
    "Imagenet:resnet18": 512,
    "Imagenet:resnet34": 512,
    "Imagenet:resnet50": 2048,
    "Imagenet:resnet101": 2048,
    "Imagenet:resnet152": 2048,
    "Imagenet:vgg11": 4096,
    "Imagenet:vgg19": 4096,
    "Imagenet:vit_b_16": 768,
    "CLIP:RN50": 1024,
    "CLIP:RN101": 512,
    "CLIP:ViT-L/14": 768,
}


def test_registry_lists_the_eleven_archs() -> None:
    assert {name: spec.width for name, spec in ARCHS.items()} == DOCUMENTED_WIDTHS


@pytest.mark.parametrize("arch", sorted(DOCUMENTED_WIDTHS))
def test_every_arch_builds_with_random_weights(arch: str) -> None:
    size = 28 if arch == "CLIP:ViT-L/14" else 32
    backbone = build_backbone(arch, weights="none", image_size=size)
    backbone.module.eval()
    with torch.no_grad():
        features = backbone.module(torch.rand(2, 3, size, size))
    assert features.shape == (2, DOCUMENTED_WIDTHS[arch])
    assert torch.isfinite(features).all()


def test_unknown_arch_lists_valid_names_and_closest_match() -> None:
    with pytest.raises(UserError) as info:
        resolve_arch("Imagenet:resnet5")
    message = str(info.value)
    assert "--arch Imagenet:resnet5" in message
    assert "Did you mean 'Imagenet:resnet50'" in message
    assert all(name in message for name in ARCHS)


def test_unknown_weights_choice() -> None:
    with pytest.raises(UserError, match="--weights imagenet21k"):
        build_backbone("Imagenet:resnet18", weights="imagenet21k")
