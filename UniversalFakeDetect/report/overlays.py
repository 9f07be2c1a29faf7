"""Grad-CAM heat maps beside the gallery thumbnails (``--heatmaps``): where the detector looks.

Each gallery image is explained with the run's detector checkpoint (see
:mod:`UniversalFakeDetect.heatmaps`) for the class its gallery is about: a false positive (a
real image scored fake) for "fake", what made the detector call it fake; a false negative for
"real". A queried image, in no such gallery, for the class of the detector's verdict. The
overlay is drawn at the thumbnail's own size and embedded as a JPEG data URI. Imports torch:
load this module only when heat maps are asked for.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
from PIL import Image

from rfd_common.errors import UserError
from UniversalFakeDetect.data.datasets import UnreadableImageError, read_image
from UniversalFakeDetect.heatmaps.output import overlay
from UniversalFakeDetect.heatmaps.pipeline import (
    CheckpointExplainer,
    ImageHeatmap,
    image_heatmaps,
    load_explainer,
)
from UniversalFakeDetect.heatmaps.placement import Box
from UniversalFakeDetect.report.images import jpeg_uri
from UniversalFakeDetect.report.page import Gallery, Thumb
from UniversalFakeDetect.report.run_data import METRICS_JSON, RunData

FLAG = "--checkpoint"
BATCH_SIZE = 8  # images per Grad-CAM pass: bounds the memory its activations and gradients take
EXPLAINED = {0: "fake", 1: "real"}  # a gallery's class -> the class its mistakes are explained for


def checkpoint_path(data: RunData, given: Path | None) -> tuple[Path, bool]:
    """The checkpoint to explain with: ``given`` (``--checkpoint``), else the one the run
    recorded in ``metrics.json``; and whether it was recorded (not given)."""
    if given is not None:
        return Path(given), False
    recorded = data.info.get("checkpoint")
    if not recorded:
        raise UserError(
            f"--heatmaps: {data.folder / METRICS_JSON} records no detector checkpoint; give "
            f"one with {FLAG} PATH"
        )
    return Path(recorded), True


def load_checkpoint_explainer(data: RunData, given: Path | None) -> CheckpointExplainer:
    """The run's detector (or ``given``'s) ready for Grad-CAM on the CPU; one UserError naming
    ``--checkpoint`` and the file when it is missing or unusable."""
    path, recorded = checkpoint_path(data, given)
    try:
        return load_explainer(path, device="cpu", flag=FLAG)
    except UserError as exc:
        if not recorded:
            raise
        raise UserError(
            f"{exc} (the checkpoint recorded in {METRICS_JSON}; give another with {FLAG} PATH)"
        ) from exc


def _scaled_box(box: Box, sx: float, sy: float) -> Box:
    """``box`` in the pixels of an image scaled by ``sx``, ``sy`` (covering, not shrinking)."""
    left, top, right, bottom = box
    return (
        math.floor(left * sx),
        math.floor(top * sy),
        math.ceil(right * sx),
        math.ceil(bottom * sy),
    )


def overlay_thumbnail(image: Image.Image, item: ImageHeatmap, width: int, height: int) -> str:
    """The overlay of ``item`` on ``image``, drawn at ``width`` x ``height``, as a data URI."""
    small = image.resize((width, height), Image.Resampling.LANCZOS)
    heat = cv2.resize(item.heat, (width, height), interpolation=cv2.INTER_AREA)
    box = _scaled_box(item.box, width / image.width, height / image.height)
    return jpeg_uri(overlay(small, heat, box))


@dataclass
class GalleryOverlays:
    """Adds Grad-CAM overlays to gallery thumbnails and counts what it did."""

    loaded: CheckpointExplainer
    threshold: float = 0.5
    explained: int = 0
    unreadable: int = 0
    seconds: float = 0.0

    def add(self, galleries: list[Gallery], root: Path | None) -> None:
        """Give every readable thumbnail of ``galleries`` its overlay (``thumb.overlay``)."""
        if root is None:
            return  # no dataset root: no thumbnails either
        began = time.perf_counter()
        for gallery in galleries:
            explain = "verdict" if gallery.label is None else EXPLAINED[gallery.label]
            shown = [t for t in gallery.thumbs if t.uri is not None]
            for start in range(0, len(shown), BATCH_SIZE):
                self._explain(shown[start : start + BATCH_SIZE], root, explain)
        self.seconds += time.perf_counter() - began

    def _explain(self, thumbs: list[Thumb], root: Path, explain: str) -> None:
        """One Grad-CAM batch for ``thumbs`` (an unreadable image is left without overlay)."""
        readable, images = [], []
        for thumb in thumbs:
            try:
                images.append(read_image(root / thumb.path))
                readable.append(thumb)
            except UnreadableImageError:
                self.unreadable += 1
        loaded = self.loaded
        maps = image_heatmaps(loaded.explainer, images, loaded.transform, explain, self.threshold)
        for thumb, image, item in zip(readable, images, maps, strict=True):
            thumb.overlay = overlay_thumbnail(image, item, thumb.width, thumb.height)
            thumb.explained = item.explained
            self.explained += 1

    def note(self) -> dict[str, object]:
        """What the page says about the heat maps: checkpoint, layer, counts, time."""
        return {
            "checkpoint": str(self.loaded.path),
            "layer": self.loaded.explainer.target.name,
            "explained": self.explained,
            "unreadable": self.unreadable,
            "seconds": self.seconds,
        }
