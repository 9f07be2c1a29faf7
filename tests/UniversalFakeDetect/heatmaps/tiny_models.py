"""Tiny detectors for the heat-map tests: hand-set or randomly initialised, nothing downloaded."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from UniversalFakeDetect.checkpoint import save_checkpoint
from UniversalFakeDetect.models.detector import Detector
from UniversalFakeDetect.models.factory import create_detector
from UniversalFakeDetect.models.registry import ArchSpec, Backbone

PATCH_ARCH = "test:bright-patch"
STRIDE = 4  # the patch net's cell, in crop pixels


class BrightPatchNet(nn.Module):
    """Two feature maps at stride 4: ``bright`` fires where a cell's mean is above 0.8, ``dark``
    where it is below 0.2; averaged over the grid they give the features [B, 2]."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, kernel_size=STRIDE, stride=STRIDE)
        cell = 3 * STRIDE * STRIDE
        with torch.no_grad():
            self.conv.weight[0].fill_(1 / cell)
            self.conv.weight[1].fill_(-1 / cell)
            self.conv.bias.copy_(torch.tensor([-0.8, 0.2]))
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x)).mean(dim=(2, 3))


def spec(name: str, width: int) -> ArchSpec:
    """An arch spec without normalisation (images reach the backbone as they are)."""
    return ArchSpec(name, "test", name, width, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))


def detector_on(module: nn.Module, name: str, width: int) -> Detector:
    """A frozen detector of ``module`` registered as ``name`` (random head, eval mode)."""
    backbone = Backbone(module=module, spec=spec(name, width), weights="none")
    return Detector(backbone, dropout=0.5, fix_backbone=True).eval()


def bright_patch_detector() -> Detector:
    """Fake logit = 400 * mean bright response - 200 * mean dark response - 1: a bright patch
    makes the image fake, dark areas make it real."""
    detector = detector_on(BrightPatchNet(), PATCH_ARCH, 2)
    with torch.no_grad():
        detector.fc.weight.copy_(torch.tensor([[400.0, -200.0]]))
        detector.fc.bias.fill_(-1.0)
    return detector


def tiny_checkpoint(path: Path, crop_size: int = 64, seed: int = 0) -> Path:
    """A randomly initialised ResNet-18 detector checkpoint for ``crop_size`` crops (a 2x2
    grid at 64 px), as train.py writes them."""
    torch.manual_seed(seed)
    detector, transform = create_detector("Imagenet:resnet18", "none", crop_size=crop_size)
    return save_checkpoint(
        detector, path, load_size=transform.load_size, crop_size=transform.crop_size
    )
