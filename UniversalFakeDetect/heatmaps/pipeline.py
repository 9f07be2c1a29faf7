"""Heat maps of whole images: the test view, Grad-CAM, and the map placed back on each image;
and a detector checkpoint loaded for explaining."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from rfd_common.errors import UserError
from UniversalFakeDetect.data.transforms import TransformConfig, eval_view
from UniversalFakeDetect.heatmaps.gradcam import CamResult, GradCamExplainer
from UniversalFakeDetect.heatmaps.placement import Box, crop_box, place_on_image


@dataclass
class ImageHeatmap:
    """One image's map [height, width] in [0, 1], the box the detector saw, the class
    explained, the detector's P(fake) and the target layer's grid."""

    heat: np.ndarray
    box: Box
    explained: str
    prob_fake: float
    grid: tuple[int, int]


def place_results(
    result: CamResult, images: Sequence[Image.Image], transform: TransformConfig
) -> list[ImageHeatmap]:
    """The crop maps of ``result`` put back on their ``images`` (see :mod:`.placement`)."""
    probs = 1.0 / (1.0 + np.exp(-result.logits.astype(np.float64)))
    out = []
    for index, image in enumerate(images):
        width, height = image.size
        heat = place_on_image(result.maps[index], width, height, transform)
        box = crop_box(width, height, transform)
        explained = result.classes[index]
        out.append(ImageHeatmap(heat, box, explained, float(probs[index]), result.grid))
    return out


def image_heatmaps(
    explainer: GradCamExplainer,
    images: Sequence[Image.Image],
    transform: TransformConfig,
    explain: str = "verdict",
    threshold: float = 0.5,
    batch: torch.Tensor | None = None,
) -> list[ImageHeatmap]:
    """Heat maps of decoded RGB ``images``, seen through the test view ``transform`` (``batch``:
    their views when the caller has them already)."""
    if not images:
        return []
    if batch is None:
        batch = torch.stack([eval_view(image, transform) for image in images])
    batch = batch.to(explainer.detector.mean.device)
    return place_results(explainer(batch, explain, threshold), images, transform)


@dataclass
class CheckpointExplainer:
    """A detector checkpoint ready to explain: the explainer and the detector's test view."""

    explainer: GradCamExplainer
    transform: TransformConfig
    path: Path


def load_explainer(path: Path, device: str = "cpu", flag: str = "--ckpt") -> CheckpointExplainer:
    """The detector checkpoint ``path`` (as train.py writes them) with its Grad-CAM target
    checked; every problem is one message naming ``flag`` and the file."""
    from UniversalFakeDetect.checkpoint import load_checkpoint

    path = Path(path)
    try:
        if path.is_file() and path.suffix != ".safetensors":
            raise UserError(f"{path}: expected a detector checkpoint from train.py (.safetensors)")
        detector, header = load_checkpoint(path, device=device)
        explainer = GradCamExplainer(detector)
    except UserError as exc:
        message = str(exc)
        for prefix in ("--ckpt ", "--explain: "):
            message = message.removeprefix(prefix)
        raise UserError(f"{flag} {path}: " + message.removeprefix(f"{path}: ")) from exc
    transform = TransformConfig(header["load_size"], header["crop_size"], flip=False)
    return CheckpointExplainer(explainer, transform, path)
