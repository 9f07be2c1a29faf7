"""Every --arch has a Grad-CAM target; tiny CNNs and ViTs of each family give image-sized maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from rfd_common.errors import UserError
from tests.UniversalFakeDetect.heatmaps.tiny_models import detector_on
from UniversalFakeDetect.data.transforms import TransformConfig
from UniversalFakeDetect.heatmaps.gradcam import GradCamExplainer
from UniversalFakeDetect.heatmaps.pipeline import image_heatmaps
from UniversalFakeDetect.heatmaps.targets import TARGET_LAYERS, find_target
from UniversalFakeDetect.models.registry import ARCHS


class TinyVgg(nn.Module):
    """VGG's layout (``features`` ending in conv, ReLU, max-pool), 8 channels."""

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models.vgg import make_layers

        self.features = make_layers([4, "M", 8, "M"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean(dim=(2, 3))


def tiny_backbone(arch: str) -> tuple[nn.Module, int, int]:
    """A small randomly initialised network of ``arch``'s family: (module, width, input size)."""
    torch.manual_seed(0)
    if arch == "Imagenet:vit_b_16":
        from torchvision.models.vision_transformer import VisionTransformer

        vit = VisionTransformer(32, 8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32)
        vit.heads = nn.Identity()
        return vit, 16, 32
    if arch == "CLIP:ViT-L/14":
        from open_clip.transformer import VisionTransformer

        return VisionTransformer(42, 14, 16, 2, 2, 2.0, output_dim=8), 8, 42
    if arch == "CLIP:RN50":
        from open_clip.modified_resnet import ModifiedResNet

        return ModifiedResNet((1, 1, 1, 1), 8, heads=2, image_size=64, width=8), 8, 64
    if arch == "Imagenet:vgg11":
        return TinyVgg(), 8, 32
    import torchvision

    model = torchvision.models.resnet18(weights=None)
    model.fc = nn.Identity()
    return model, 512, 64


def test_every_arch_has_a_target() -> None:
    assert set(TARGET_LAYERS) == set(ARCHS)


def test_an_unknown_arch_is_named() -> None:
    detector = detector_on(nn.Conv2d(3, 4, 1), "test:mystery", 4)
    with pytest.raises(UserError, match="no Grad-CAM target layer is known for --arch test:my"):
        find_target(detector)


@pytest.mark.parametrize(
    ("arch", "layer", "grid"),
    [
        ("Imagenet:resnet18", "layer4", (2, 2)),
        ("Imagenet:vgg11", "features.4", (16, 16)),
        ("CLIP:RN50", "layer4", (2, 2)),
        ("Imagenet:vit_b_16", "encoder.layers.1.ln_1", (4, 4)),
        ("CLIP:ViT-L/14", "transformer.resblocks.1.ln_1", (3, 3)),
    ],
)
def test_tiny_backbones_give_image_sized_maps(arch: str, layer: str, grid: tuple[int, int]) -> None:
    module, width, size = tiny_backbone(arch)
    explainer = GradCamExplainer(detector_on(module, arch, width))
    assert explainer.target.name == layer
    view = TransformConfig(load_size=size, crop_size=size, flip=False)
    rng = np.random.default_rng(1)
    images = [Image.fromarray(rng.integers(0, 256, (h, w, 3), np.uint8)) for w, h in
              ((size + 9, size), (size, size + 21))]  # fmt: skip
    verdicts = image_heatmaps(explainer, images, view)
    for image, item in zip(images, verdicts, strict=True):
        assert item.grid == grid
        assert item.heat.shape == (image.height, image.width)
        assert np.isfinite(item.heat).all() and 0 <= item.heat.min() <= item.heat.max() <= 1
        assert item.explained == ("fake" if item.prob_fake >= 0.5 else "real")
    # gradients reach the target: before the ReLU the two classes' maps are opposite, so one
    # of them has positive evidence somewhere
    fake, real = (image_heatmaps(explainer, images[:1], view, c)[0] for c in ("fake", "real"))
    assert max(fake.heat.max(), real.heat.max()) > 0.5


@pytest.mark.parametrize("batch_first", [True, False])
def test_tokens_go_back_to_their_patches(batch_first: bool) -> None:
    """Token 1 + r * cols + c (after the class token) lands at row r, column c of the grid."""
    from UniversalFakeDetect.heatmaps.gradcam import _token_transform
    from UniversalFakeDetect.heatmaps.targets import Target

    target = Target(nn.Identity(), "ln", patch=(4, 8), batch_first=batch_first)
    reshape = _token_transform(target, height=12, width=16)  # 3 rows x 2 columns
    tokens = torch.arange(7.0).view(1, 7, 1).expand(2, 7, 5)  # [B, 1 + 6, D]
    grid = reshape(tokens if batch_first else tokens.transpose(0, 1))
    assert grid.shape == (2, 5, 3, 2)
    assert grid[1, 4].tolist() == [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]
    with pytest.raises(ValueError, match="expected 1 class token \\+ 3x2 patches"):
        reshape(tokens[:, :5] if batch_first else tokens[:, :5].transpose(0, 1))
