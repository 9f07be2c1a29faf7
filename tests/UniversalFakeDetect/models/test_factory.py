"""create_detector: one input-size rule for every caller, and the preprocessing it returns."""

from __future__ import annotations

import pytest
import torch

from rfd_common.errors import UserError
from UniversalFakeDetect.models.factory import backbone_input_size, create_detector
from UniversalFakeDetect.models.registry import resolve_arch


def test_random_weights_are_drawn_for_the_crop_size() -> None:
    torch.manual_seed(0)
    detector, transform = create_detector("Imagenet:vit_b_16", "none", crop_size=32, dropout=0.1)
    with torch.no_grad():
        assert detector.eval()(torch.rand(2, 3, 32, 32)).shape == (2,)
    assert (transform.load_size, transform.crop_size) == (36, 32)
    assert detector.weights == "none" and detector.dropout.p == 0.1


@pytest.mark.parametrize("arch", ["CLIP:RN50", "CLIP:ViT-L/14", "Imagenet:vit_b_16"])
def test_fixed_input_networks_with_real_weights_take_their_native_crop_only(arch: str) -> None:
    spec = resolve_arch(arch)
    assert backbone_input_size(spec, "pretrained", 224) is None
    assert backbone_input_size(spec, "checkpoint", 224) is None
    with pytest.raises(UserError, match=rf"--cropSize 112: {arch} with pretrained weights"):
        backbone_input_size(spec, "pretrained", 112)


def test_convolutional_networks_take_any_crop_with_real_weights() -> None:
    assert backbone_input_size(resolve_arch("Imagenet:resnet50"), "pretrained", 112) is None
