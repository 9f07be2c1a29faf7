"""Backbone features computed once per (arch, weights, preprocessing, image) and memory-mapped.

With a frozen backbone the features of an image never change for a given preprocessing, so
training the head, MC-dropout querying and testing all run from this cache. Layout of one cache
entry (a folder named by the hash of its key)::

    key.json        what the features depend on (arch, weights, transform, views, images)
    features.f32    float32 memmap [views, images, width]
    done.npy        bool [views, images]: which rows are computed (written atomically)

View 0 is the test-time view (centre crop); views 1..V are fixed, seeded augmented views of the
training transform, one drawn per image and epoch (``--cache_views``). A half-built cache resumes
where it stopped; a changed key gives a new entry.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from rfd_common.files import atomic_path, atomic_write_json
from rfd_common.fingerprints import json_digest
from UniversalFakeDetect.features.shard import Shard

# float32: float16 features move a linear head's probabilities by up to ~4e-4 (measured with
# UniversalFakeDetect's head on ViT-L/14), more than the parity tests with the original allow.
FEATURE_DTYPE = np.float32
FEATURES_NAME = "features.f32"
DONE_NAME = "done.npy"
KEY_NAME = "key.json"


def images_fingerprint(root: Path, paths: Sequence[str]) -> str:
    """Hash of the image list with each file's size: a changed or replaced image changes it."""
    digest = hashlib.sha256(str(Path(root).resolve()).encode())
    for path in paths:
        try:
            size = (Path(root) / path).stat().st_size
        except OSError:
            size = -1
        digest.update(f"{path}\0{size}\n".encode())
    return digest.hexdigest()[:20]


def save_array(path: Path, array: np.ndarray) -> None:
    """``np.save`` through a temporary file and a rename."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array)


@dataclass
class FeatureCache:
    """One cache entry: features of ``paths`` under ``views`` views, ``width`` wide."""

    folder: Path
    paths: list[str]
    views: int
    width: int

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.views, len(self.paths), self.width)

    def features(self, mode: str = "r") -> np.memmap:
        path = self.folder / FEATURES_NAME
        return np.memmap(path, dtype=FEATURE_DTYPE, mode=mode, shape=self.shape)

    def done(self) -> np.ndarray:
        path = self.folder / DONE_NAME
        if path.is_file():
            done = np.load(path)
            if done.shape == (self.views, len(self.paths)):
                return done
        return np.zeros((self.views, len(self.paths)), dtype=bool)

    def _save_done(self, done: np.ndarray) -> None:
        save_array(self.folder / DONE_NAME, done)

    @property
    def complete(self) -> bool:
        return bool(self.done().all())

    def view(self, view: int, indices: np.ndarray | None = None) -> np.ndarray:
        """float32 features [N, width] of one view (all images, or ``indices``)."""
        data = self.features()[view]
        return np.array(data if indices is None else data[indices], dtype=np.float32)  # a copy


def open_cache(
    cache_root: Path, key: dict[str, Any], paths: Sequence[str], views: int, width: int
) -> FeatureCache:
    """The cache entry for ``key`` (created empty if new)."""
    folder = Path(cache_root) / json_digest(key, 20)
    folder.mkdir(parents=True, exist_ok=True)
    cache = FeatureCache(folder=folder, paths=list(paths), views=views, width=width)
    key_file = folder / KEY_NAME
    feature_file = folder / FEATURES_NAME
    expected_bytes = int(np.prod(cache.shape)) * FEATURE_DTYPE().itemsize
    if not key_file.is_file() or not feature_file.is_file():
        atomic_write_json(key_file, key)
        (folder / DONE_NAME).unlink(missing_ok=True)
        # created whole under a temporary name: ranks opening it at once never see it short
        with atomic_path(feature_file) as tmp, open(tmp, "r+b") as handle:
            handle.truncate(expected_bytes)
    elif feature_file.stat().st_size != expected_bytes:
        raise RuntimeError(f"{feature_file}: unexpected size; delete {folder} and rerun")
    return cache


SHARD_DONE = re.compile(r"shard-(\d+)-of-(\d+)\.done\.npy")


def _shard_paths(cache: FeatureCache, shard: Shard) -> tuple[Path, Path]:
    return cache.folder / f"{shard.stem}.f32", cache.folder / f"{shard.stem}.done.npy"


def _open_shard(cache: FeatureCache, shard: Shard) -> tuple[np.memmap, np.ndarray]:
    """The shard's feature memmap and done flags (created empty, or resumed)."""
    feature_file, done_file = _shard_paths(cache, shard)
    shape = (cache.views, len(shard.rows(len(cache.paths))), cache.width)
    size = int(np.prod(shape)) * FEATURE_DTYPE().itemsize
    if not feature_file.is_file() or feature_file.stat().st_size != size:
        done_file.unlink(missing_ok=True)
        with open(feature_file, "wb") as handle:
            handle.truncate(size)
    done = np.load(done_file) if done_file.is_file() else np.zeros(shape[:2], dtype=bool)
    if done.shape != shape[:2]:
        done = np.zeros(shape[:2], dtype=bool)
    return np.memmap(feature_file, dtype=FEATURE_DTYPE, mode="r+", shape=shape), done


def merge_shards(cache: FeatureCache) -> int:
    """Copy every finished row of the shard files into the cache, then delete them.

    Returns the number of rows merged. Call it from one process only.
    """
    merged = 0
    found = []
    for path in sorted(cache.folder.glob("shard-*-of-*.done.npy")):
        match = SHARD_DONE.fullmatch(path.name)
        if match:
            found.append(Shard(int(match.group(1)), int(match.group(2))))
    if not found:
        return 0
    features = cache.features(mode="r+")
    done = cache.done()
    for shard in found:
        shard_features, shard_done = _open_shard(cache, shard)
        rows = shard.rows(len(cache.paths))
        for view in range(cache.views):
            local = np.flatnonzero(shard_done[view])
            features[view, rows[local]] = shard_features[view, local]
            done[view, rows[local]] = True
            merged += len(local)
        del shard_features
    features.flush()
    cache._save_done(done)
    for shard in found:
        for path in reversed(_shard_paths(cache, shard)):
            path.unlink(missing_ok=True)
    return merged


class _RowsOfView(Dataset):
    """(image tensor, row) pairs of the rows still missing in one view."""

    def __init__(self, rows: np.ndarray, load: Callable[[int, int], torch.Tensor], view: int):
        self.rows = rows
        self.load = load
        self.view = view

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        row = int(self.rows[i])
        return self.load(row, self.view), row


@torch.no_grad()
def fill_cache(
    cache: FeatureCache,
    extract: Callable[[torch.Tensor], torch.Tensor],
    load: Callable[[int, int], torch.Tensor],
    batch_size: int = 64,
    num_workers: int = 0,
    flush_every: int = 20,
    desc: str = "features",
    shard: Shard | None = None,
) -> FeatureCache:
    """Compute the missing rows of every view: ``load(row, view)`` gives the image tensor,
    ``extract(batch)`` the features. Progress is saved every ``flush_every`` batches, so a
    killed run resumes where it stopped. With a ``shard`` only its rows are computed, into its
    own files (see :class:`Shard`); without one, finished shard rows are merged in first."""
    if shard is None:
        merge_shards(cache)
    done = cache.done()
    if shard is None:
        features = None if done.all() else cache.features(mode="r+")
        todo, local_of = ~done, np.arange(len(cache.paths))

        def save() -> None:
            cache._save_done(done)
    else:
        features, own_done = _open_shard(cache, shard)
        rows = shard.rows(len(cache.paths))
        todo = np.zeros_like(done)
        todo[:, rows] = ~own_done & ~done[:, rows]
        local_of = np.zeros(len(cache.paths), dtype=np.int64)
        local_of[rows] = np.arange(len(rows))
        done = own_done
        done_file = _shard_paths(cache, shard)[1]

        def save() -> None:
            save_array(done_file, own_done)

    missing = int(todo.sum())
    if not missing:
        return cache
    bar = tqdm(total=missing, desc=desc if shard is None else f"{desc} [{shard.stem}]", unit="img")
    for view in range(cache.views):
        rows = np.flatnonzero(todo[view])
        if not len(rows):
            continue
        loader = DataLoader(
            _RowsOfView(rows, load, view), batch_size=batch_size, num_workers=num_workers
        )
        for step, (images, batch_rows) in enumerate(loader, 1):
            out = extract(images).float().cpu().numpy().astype(FEATURE_DTYPE)
            index = local_of[batch_rows.numpy()]
            features[view, index] = out
            done[view, index] = True
            bar.update(len(index))
            if step % flush_every == 0:
                features.flush()
                save()
    features.flush()
    save()
    bar.close()
    return cache
