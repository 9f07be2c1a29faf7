"""Grad-CAM maps of a batch of crops, with the ``grad-cam`` package (``pytorch_grad_cam``).

The target is the detector's one logit: the fake logit to explain "fake", its negation to
explain "real" (what makes the image look real to the detector). ``explain="verdict"`` picks,
per image, the class of the verdict at ``threshold``. Maps are ReLU'd and scaled to [0, 1] per
image by the package (a map without positive evidence is all zero), at the crop's size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.reshape_transforms import vit_reshape_transform
from torch import nn

from UniversalFakeDetect.heatmaps.targets import Target, find_target
from UniversalFakeDetect.models.detector import Detector

EXPLAIN_CHOICES = ("verdict", "fake", "real")


class LogitModel(nn.Module):
    """The detector's logit with gradients through its backbone (the detector itself runs a
    frozen backbone under ``no_grad``); eval mode, so no dropout."""

    def __init__(self, detector: Detector) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        detector = self.detector
        x = detector.normalise(images)
        if not x.requires_grad:  # frozen weights: the target's output must carry gradients
            x = x.detach().requires_grad_(True)
        return detector.head(detector.backbone(x).float())


class _ClassTarget:
    """The logit of one image, signed for the class explained; records that class."""

    def __init__(self, explain: str, threshold: float, chosen: list[str]) -> None:
        self.explain, self.threshold, self.chosen = explain, threshold, chosen

    def __call__(self, logit: torch.Tensor) -> torch.Tensor:
        label = self.explain
        if label == "verdict":
            label = "fake" if torch.sigmoid(logit).item() >= self.threshold else "real"
        self.chosen.append(label)
        return logit if label == "fake" else -logit


@dataclass
class CamResult:
    """Maps [B, crop, crop] in [0, 1], the logits [B], the class explained per image and the
    target layer's grid (rows, columns)."""

    maps: np.ndarray
    logits: np.ndarray
    classes: list[str]
    grid: tuple[int, int]


def _token_transform(
    target: Target, height: int, width: int
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Tokens [B, 1 + rows * cols, D] -> [B, D, rows, cols], the class token dropped."""
    rows, cols = height // target.patch[0], width // target.patch[1]

    def reshape(tokens: torch.Tensor) -> torch.Tensor:
        if not target.batch_first:
            tokens = tokens.transpose(0, 1)
        if tokens.shape[1] != 1 + rows * cols:
            raise ValueError(
                f"{target.name}: {tokens.shape[1]} tokens, expected 1 class token + "
                f"{rows}x{cols} patches for a {height}x{width} input"
            )
        return vit_reshape_transform(tokens, height=rows, width=cols)

    return reshape


class GradCamExplainer:
    """Grad-CAM of a detector on its own crops: ``explainer(batch)`` -> :class:`CamResult`."""

    def __init__(self, detector: Detector) -> None:
        self.target = find_target(detector)
        # only the target layer's gradients are used: none for the weights (a fine-tuned
        # backbone would otherwise compute and store a gradient for every one of them)
        self.detector = detector.eval().requires_grad_(False)
        self.model = LogitModel(detector)

    def __call__(
        self, batch: torch.Tensor, explain: str = "verdict", threshold: float = 0.5
    ) -> CamResult:
        """Maps of ``batch`` ([B, 3, crop, crop] in [0, 1], on the detector's device)."""
        if explain not in EXPLAIN_CHOICES:
            raise ValueError(f"explain {explain!r}: expected one of {EXPLAIN_CHOICES}")
        height, width = batch.shape[-2:]
        reshape = _token_transform(self.target, height, width) if self.target.tokens else None
        cam = GradCAM(self.model, [self.target.layer], reshape_transform=reshape)
        chosen: list[str] = []
        targets = [_ClassTarget(explain, threshold, chosen) for _ in range(len(batch))]
        try:  # not ``with cam``: its __exit__ swallows IndexError
            with torch.enable_grad():
                maps = cam(input_tensor=batch, targets=targets)
            logits = cam.outputs.detach().float().cpu().numpy()
            grid = tuple(cam.activations_and_grads.activations[0].shape[-2:])
        finally:
            cam.activations_and_grads.release()
            self.detector.zero_grad(set_to_none=True)
        maps = np.clip(np.nan_to_num(np.asarray(maps, dtype=np.float32)), 0.0, 1.0)
        return CamResult(maps, logits, chosen, (int(grid[0]), int(grid[1])))
