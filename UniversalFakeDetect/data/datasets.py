"""A torch dataset over manifest rows."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from PIL import UnidentifiedImageError
from torch.utils.data import Dataset

from datagen.errors import UserError
from datagen.manifest import ManifestRow
from UniversalFakeDetect.data.transforms import load_rgb


class ManifestImageDataset(Dataset):
    """Items are ``(image tensor, label, index)`` for the given rows of a dataset root."""

    def __init__(
        self,
        root: Path,
        rows: Sequence[ManifestRow],
        transform: Callable[[object], torch.Tensor],
    ) -> None:
        self.root = Path(root)
        self.rows = list(rows)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        row = self.rows[index]
        path = self.root / row.path
        try:
            image = load_rgb(str(path))
        except (OSError, UnidentifiedImageError) as exc:
            raise UserError(
                f"{path}: cannot read image ({exc}); remove it from the manifest"
            ) from exc
        return self.transform(image), row.label, index

    def labels(self) -> torch.Tensor:
        return torch.tensor([r.label for r in self.rows])
