"""A trained detector's heat map beside each explanation (``explain --heatmap_checkpoint``).

For each explained image the detector's Grad-CAM map (see ``UniversalFakeDetect.heatmaps``)
of its own verdict's class (fake: its logit; real: the negated logit; threshold 0.5) is
written under the results folder as ``heatmaps/<image path>.png`` (the overlay, at the image's
size) and ``.npy`` (the map); the explanation's record gains their paths (relative to the
results folder), the class explained and the detector's P(fake).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from datagen.manifest import ManifestRow
from UniversalFakeDetect.data.datasets import read_image
from UniversalFakeDetect.heatmaps.output import write_heatmap
from UniversalFakeDetect.heatmaps.pipeline import CheckpointExplainer, image_heatmaps

FOLDER = "heatmaps"
FLAG = "--heatmap_checkpoint"
# the fields a record gains; absent from the records of runs without heat maps
RECORD_FIELDS = ("detector_prob_fake", "heatmap_class", "heatmap", "heatmap_map")


class RowHeatmaps:
    """Writes the heat maps of manifest rows under ``out/heatmaps/``; returns their fields."""

    def __init__(self, loaded: CheckpointExplainer, root: Path, out: Path) -> None:
        self.loaded, self.root, self.out = loaded, Path(root), Path(out)

    def __call__(self, rows: Sequence[ManifestRow]) -> list[dict[str, Any]]:
        """One dict of :data:`RECORD_FIELDS` per row, in order. The images are decoded as the
        detector's data loading decodes them (``read_image``: 16-bit images scaled, not
        clipped), which LLaVA's own decoding does not do."""
        images = [read_image(self.root / row.path) for row in rows]
        maps = image_heatmaps(self.loaded.explainer, images, self.loaded.transform)
        fields = []
        for row, image, item in zip(rows, images, maps, strict=True):
            png, npy = write_heatmap(self.out / FOLDER / row.path, image, item.heat, item.box)
            fields.append({
                "detector_prob_fake": round(item.prob_fake, 6),
                "heatmap_class": item.explained,
                "heatmap": png.relative_to(self.out).as_posix(),
                "heatmap_map": npy.relative_to(self.out).as_posix(),
            })  # fmt: skip
        return fields


def load_heatmap_detector(checkpoint: str) -> CheckpointExplainer:
    """The detector of ``--heatmap_checkpoint`` on the CPU (moved to the run's device later),
    with its Grad-CAM target checked; problems name the flag and the file."""
    from UniversalFakeDetect.heatmaps.pipeline import load_explainer

    return load_explainer(Path(checkpoint), device="cpu", flag=FLAG)
