"""Sharded extraction: ranks write their own files, merged rows equal a one-process run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from UniversalFakeDetect.features.cache import (
    FeatureCache,
    Shard,
    fill_cache,
    merge_shards,
    open_cache,
)

PATHS = [f"img{i}.jpg" for i in range(23)]
WIDTH = 4


def load(row: int, view: int) -> torch.Tensor:
    return torch.tensor([row, view], dtype=torch.float32)


class CountingExtract:
    """Features from (row, view); counts the rows it computed; can die after ``die_after``."""

    def __init__(self, die_after: int | None = None) -> None:
        self.rows = 0
        self.die_after = die_after

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        if self.die_after is not None and self.rows >= self.die_after:
            raise KeyboardInterrupt
        self.rows += len(batch)
        row, view = batch[:, 0:1], batch[:, 1:2]
        return torch.cat([row, view, row * 0.5 + view, -row], dim=1)


def new_cache(folder: Path) -> FeatureCache:
    return open_cache(folder, {"test": 1}, PATHS, views=2, width=WIDTH)


def expected(tmp_path: Path) -> np.ndarray:
    cache = fill_cache(new_cache(tmp_path / "single"), CountingExtract(), load, batch_size=4)
    return np.asarray(cache.features())


def test_three_ranks_then_merge_equal_one_process(tmp_path: Path) -> None:
    cache = new_cache(tmp_path / "sharded")
    computed = []
    for rank in range(3):
        extract = CountingExtract()
        fill_cache(cache, extract, load, batch_size=4, shard=Shard(rank, 3))
        computed.append(extract.rows)
    assert sum(computed) == 2 * len(PATHS) and max(computed) - min(computed) <= 2
    assert not cache.done().any()  # ranks never touch the shared files
    assert len(list(cache.folder.glob("shard-*"))) == 6
    assert merge_shards(cache) == 2 * len(PATHS)
    assert cache.complete and not list(cache.folder.glob("shard-*"))
    np.testing.assert_array_equal(np.asarray(cache.features()), expected(tmp_path))


def test_a_killed_rank_keeps_its_finished_rows(tmp_path: Path) -> None:
    cache = new_cache(tmp_path / "sharded")
    fill_cache(cache, CountingExtract(), load, batch_size=2, shard=Shard(0, 3))
    with pytest.raises(KeyboardInterrupt):  # rank 1 dies after 4 rows, flushed every batch
        fill_cache(
            cache, CountingExtract(die_after=4), load, batch_size=2, flush_every=1,
            shard=Shard(1, 3),
        )  # fmt: skip
    resumed = CountingExtract()
    fill_cache(cache, resumed, load, batch_size=2, shard=Shard(1, 3))
    assert resumed.rows == len(Shard(1, 3).rows(len(PATHS))) * 2 - 4  # only what was missing
    # rank 2 never ran: one process merges ranks 0 and 1 and computes rank 2's rows itself
    single = CountingExtract()
    fill_cache(cache, single, load, batch_size=4)
    assert single.rows == 2 * len(Shard(2, 3).rows(len(PATHS)))
    assert cache.complete
    np.testing.assert_array_equal(np.asarray(cache.features()), expected(tmp_path))


def test_ranks_skip_rows_the_cache_already_has(tmp_path: Path) -> None:
    cache = new_cache(tmp_path / "c")
    fill_cache(cache, CountingExtract(), load, batch_size=4)
    extract = CountingExtract()
    fill_cache(cache, extract, load, shard=Shard(1, 2))
    assert extract.rows == 0


def test_shard_from_torchrun_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert Shard.from_env() is None
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    assert Shard.from_env() == Shard(3, 4)
    assert Shard(3, 4).rows(10).tolist() == [3, 7]
    with pytest.raises(ValueError, match="rank 4"):
        Shard(4, 4)


def test_torchrun_extracts_with_two_ranks(tiny_root: Path, tmp_path: Path) -> None:
    """Two CPU ranks (gloo) fill the caches; training afterwards finds them complete."""
    env = {**os.environ, "RFD_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    flags = ["--data_root", str(tiny_root), "--arch", "Imagenet:resnet18", "--weights", "none",
             "--fix_backbone", "--loadSize", "32", "--cropSize", "28", "--gpu_ids", "-1",
             "--batch_size", "16", "--checkpoints_dir", str(tmp_path / "ckpt"),
             "--result_folder", str(tmp_path / "results")]  # fmt: skip
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", "-m", "UniversalFakeDetect.train",
               "--extract_features_only", *flags]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "merged" in done.stdout and done.stdout.count(", complete:") == 3
    entries = [p for p in (tmp_path / "cache" / "features").iterdir() if p.is_dir()]
    assert len(entries) == 3 and not list((tmp_path / "cache").rglob("shard-*"))
    # the same run in one process: nothing left to extract, same features
    single = subprocess.run(
        [sys.executable, "-m", "UniversalFakeDetect.train", "--extract_features_only", *flags],
        env={**env, "RFD_CACHE_DIR": str(tmp_path / "single")}, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert single.returncode == 0, single.stderr[-3000:]
    for entry in entries:
        twin = tmp_path / "single" / "features" / entry.name
        a = np.fromfile(entry / "features.f32", dtype=np.float32)
        b = np.fromfile(twin / "features.f32", dtype=np.float32)
        np.testing.assert_allclose(a, b, atol=1e-2)
