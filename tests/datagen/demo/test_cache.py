"""datagen.demo.cache: the cached demo dataset is generated once, reused, and repaired."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from datagen.demo import DemoConfig, ensure_demo_dataset
from datagen.demo.cache import demo_dir

SMALL = {"train_images": 40, "val_images": 56}


def test_cache_generates_once_and_repairs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RFD_CACHE_DIR", str(tmp_path / "cache"))
    config = DemoConfig(seed=7, **SMALL)
    folder = ensure_demo_dataset(config, progress=False)
    assert folder == demo_dir(config) and folder.is_relative_to(tmp_path / "cache")
    stamp = (folder / "manifest.csv").stat().st_mtime_ns
    assert ensure_demo_dataset(config, progress=False) == folder
    assert (folder / "manifest.csv").stat().st_mtime_ns == stamp
    (folder / "dataset.json").write_text("{broken")
    assert ensure_demo_dataset(config, progress=False) == folder
    assert json.loads((folder / "dataset.json").read_text())["config"]["seed"] == 7
