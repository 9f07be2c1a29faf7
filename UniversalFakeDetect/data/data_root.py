"""Find the dataset: a flag, else ``$RFD_DATA_ROOT``, else the embedded demo dataset."""

from __future__ import annotations

import json
import os
from pathlib import Path

from datagen.demo import ensure_demo_dataset
from datagen.manifest import MANIFEST_NAME
from rfd_common.errors import UserError
from UniversalFakeDetect.config import DATA_ROOT_ENV


def resolve_data_root(data_root: str | Path | None, flag: str = "--data_root") -> Path:
    """The dataset folder holding ``manifest.csv``; the demo dataset when nothing is given."""
    if data_root is None and os.environ.get(DATA_ROOT_ENV):
        data_root, flag = os.environ[DATA_ROOT_ENV], f"${DATA_ROOT_ENV}"
    if data_root is None:
        return ensure_demo_dataset()
    root = Path(data_root).expanduser()
    if not root.is_dir():
        raise UserError(f"{flag} {root}: folder not found")
    if not (root / MANIFEST_NAME).is_file():
        raise UserError(
            f"{flag} {root}: no {MANIFEST_NAME} there; build one with "
            "`python -m datagen.build_manifest --root ROOT --layout wang2020|metadata`"
        )
    return root


def dataset_image_size(root: Path, default: int = 256) -> int:
    """The image side recorded in ``dataset.json`` (``default`` when absent)."""
    info = Path(root) / "dataset.json"
    if info.is_file():
        try:
            return int(json.loads(info.read_text())["preprocessing"]["size"])
        except (KeyError, ValueError, TypeError, json.JSONDecodeError):
            return default
    return default
