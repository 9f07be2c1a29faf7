"""Shared fixtures: a private cache folder and one demo dataset per test session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from datagen.demo import DemoConfig, generate_demo_dataset


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point every script's cache (demo dataset, features) at a folder of this test session."""
    cache = tmp_path_factory.mktemp("rfd-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RFD_CACHE_DIR", str(cache))
        yield cache


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default demo dataset (seed 0, 64 px), generated once per session. Do not modify."""
    out = tmp_path_factory.mktemp("demo") / "demo"
    return generate_demo_dataset(out, DemoConfig(), progress=False)
