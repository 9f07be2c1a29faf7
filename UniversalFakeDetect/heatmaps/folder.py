"""The heat maps of a ``detect --explain DIR`` run: files named after the images, an index.

For an image ``photo.jpg``: ``DIR/photo.jpg.png`` (the overlay) and ``DIR/photo.jpg.npy`` (the
map); a name met twice (two folders holding ``00000.jpg``) gets ``-2``, ``-3``... in the order
the images are scored. ``DIR/heatmaps.csv`` lists, per image, its path, P(fake), the verdict,
the class explained, both file names (relative to DIR), the box of the image the detector saw
and the target layer's grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from rfd_common.files import atomic_write_text
from rfd_common.tables import csv_text
from UniversalFakeDetect.data.transforms import TransformConfig
from UniversalFakeDetect.heatmaps.gradcam import GradCamExplainer
from UniversalFakeDetect.heatmaps.output import unique_name, write_heatmap
from UniversalFakeDetect.heatmaps.pipeline import ImageHeatmap, image_heatmaps

INDEX_NAME = "heatmaps.csv"
INDEX_FIELDS = (
    "path", "prob_fake", "verdict", "explained", "overlay", "map",
    "box_left", "box_top", "box_right", "box_bottom", "grid",
)  # fmt: skip


class HeatmapFolder:
    """Writes the heat maps of scored batches into ``folder``, then the index."""

    def __init__(
        self, folder: Path, explainer: GradCamExplainer, transform: TransformConfig,
        explain: str = "verdict", threshold: float = 0.5,
    ) -> None:  # fmt: skip
        self.folder = Path(folder)
        self.explainer, self.transform = explainer, transform
        self.explain, self.threshold = explain, threshold
        self.used: set[str] = {INDEX_NAME.lower()}
        self.rows: list[list[Any]] = []
        self.grid: tuple[int, int] | None = None

    def explain_batch(
        self, images: Sequence[Image.Image], batch: torch.Tensor | None = None
    ) -> list[ImageHeatmap]:
        """The heat maps of one batch (``batch``: the images' test views, if already made);
        each carries the detector's P(fake), from the same forward pass."""
        return image_heatmaps(
            self.explainer, images, self.transform, self.explain, self.threshold, batch
        )

    def add(
        self,
        paths: Sequence[Path],
        images: Sequence[Image.Image],
        records: Sequence[dict],
        maps: Sequence[ImageHeatmap] | None = None,
    ) -> None:
        """Write the heat maps of one scored batch (``maps`` from :meth:`explain_batch`, made
        here when not given); each record gains ``heatmap`` (the overlay's path)."""
        maps = self.explain_batch(images) if maps is None else maps
        for path, image, record, item in zip(paths, images, records, maps, strict=True):
            name = unique_name(Path(path).name, self.used)
            png, npy = write_heatmap(self.folder / name, image, item.heat, item.box)
            record["heatmap"] = str(png)
            self.grid = item.grid
            self.rows.append([
                str(path), record["prob_fake"], record["verdict"], item.explained, png.name,
                npy.name, *item.box, f"{item.grid[0]}x{item.grid[1]}",
            ])  # fmt: skip

    def write_index(self) -> Path:
        """``folder/heatmaps.csv``, one row per image explained."""
        index = self.folder / INDEX_NAME
        atomic_write_text(index, csv_text(INDEX_FIELDS, self.rows))
        return index

    def summary(self) -> str:
        """One line: how many maps, where, from which layer, which class."""
        target = self.explainer.target
        grid = f", grid {self.grid[0]}x{self.grid[1]}" if self.grid else ""
        what = {"verdict": "the verdict's class", "fake": "fake", "real": "real"}[self.explain]
        line = (
            f"heat maps of {len(self.rows)} images in {self.folder} (Grad-CAM on "
            f"{target.name}{grid}, explaining {what}; index {self.folder / INDEX_NAME})"
        )
        if self.grid == (1, 1):
            line += "; a 1x1 grid holds no place: every map is flat, use larger crops"
        return line
