"""Fixed perturbations for robustness testing, and the table that compares them.

Each perturbation is deterministic (same image in, same image out) and is applied to the decoded
image before the test view: JPEG re-compression at quality 95/75/50/30 (Pillow), Gaussian blur
with sigma 1/2/4, down-scaling by 0.5/0.25 (bilinear; the test view resizes back).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from rfd_common.files import atomic_write_json, atomic_write_text
from rfd_common.tables import csv_text
from UniversalFakeDetect.data.augment import gaussian_blur, jpeg_roundtrip
from UniversalFakeDetect.data.transforms import TransformConfig, eval_view
from UniversalFakeDetect.evaluation.metrics import EvaluationResult

Perturb = Callable[[Image.Image], Image.Image]


def _jpeg(quality: int) -> Perturb:
    return lambda image: Image.fromarray(jpeg_roundtrip(np.asarray(image), quality, "pil"))


def _blur(sigma: float) -> Perturb:
    return lambda image: Image.fromarray(gaussian_blur(np.asarray(image), sigma))


def _downscale(factor: float) -> Callable[[Image.Image], Image.Image]:
    def apply(image: Image.Image) -> Image.Image:
        size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
        return image.resize(size, Image.Resampling.BILINEAR)

    return apply


PERTURBATIONS: dict[str, Callable[[Image.Image], Image.Image]] = {
    **{f"jpeg_q{q}": _jpeg(q) for q in (95, 75, 50, 30)},
    **{f"blur_sigma{s}": _blur(float(s)) for s in (1, 2, 4)},
    **{f"downscale_{f}": _downscale(f) for f in (0.5, 0.25)},
}


def perturbed_views(
    perturbation: str | Perturb, transform: TransformConfig
) -> Callable[[Image.Image, int], torch.Tensor]:
    """A view function: perturb the image (a name of :data:`PERTURBATIONS` or a function),
    then take the test view."""
    perturb = PERTURBATIONS[perturbation] if isinstance(perturbation, str) else perturbation
    return lambda image, index: eval_view(perturb(image), transform)


def chosen_perturbation(
    gaussian_sigma: float | None, jpeg_quality: int | None
) -> tuple[str, Perturb] | None:
    """UniversalFakeDetect's ``--gaussian_sigma``/``--jpeg_quality`` test: blur, then JPEG.

    Returns the name (``blur_sigma2+jpeg_q75``) and the function, or None when neither is set.
    """
    steps: list[tuple[str, Perturb]] = []
    if gaussian_sigma:
        steps.append((f"blur_sigma{gaussian_sigma:g}", _blur(float(gaussian_sigma))))
    if jpeg_quality:
        steps.append((f"jpeg_q{jpeg_quality}", _jpeg(int(jpeg_quality))))
    if not steps:
        return None

    def apply(image: Image.Image) -> Image.Image:
        for _, step in steps:
            image = step(image)
        return image

    return "+".join(name for name, _ in steps), apply


def write_robustness(table: dict[str, EvaluationResult], folder: Path) -> Path:
    """``robustness.csv`` and ``robustness.json``: one row per perturbation (``clean`` first)."""
    generators = sorted({m.source for r in table.values() for m in r.sources if m.ap is not None})
    header = ["perturbation", "accuracy", "real_accuracy", "fake_accuracy", "mean_ap"]
    header += [f"ap:{g}" for g in generators]
    rows, records = [], {}
    for name, result in table.items():
        ap = {m.source: m.ap for m in result.sources}
        s = result.summary
        row = [name, s["accuracy"], s["real_accuracy"], s["fake_accuracy"], s["mean_ap"]]
        row += [ap.get(g) for g in generators]
        rows.append(row)
        records[name] = dict(zip(header[1:], row[1:], strict=True))
    atomic_write_text(Path(folder) / "robustness.csv", csv_text(header, rows))
    atomic_write_json(Path(folder) / "robustness.json", records)
    return Path(folder) / "robustness.csv"
