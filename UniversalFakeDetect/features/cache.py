"""Backbone features computed once per (arch, weights, preprocessing, image) and memory-mapped.

With a frozen backbone the features of an image never change for a given preprocessing, so
training the head, MC-dropout querying and testing all run from this cache. Layout of one cache
entry (a folder named by the hash of its key)::

    key.json        what the features depend on (arch, weights, transform, views, images)
    features.f16    float16 memmap [views, images, width]
    done.npy        bool [views, images]: which rows are computed (written atomically)

View 0 is the test-time view (centre crop); views 1..V are fixed, seeded augmented views of the
training transform, one drawn per image and epoch (``--cache_views``). A half-built cache resumes
where it stopped; a changed key gives a new entry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from datagen.fileio import atomic_path, atomic_write_json

FEATURES_NAME = "features.f16"
DONE_NAME = "done.npy"
KEY_NAME = "key.json"


def key_digest(key: dict[str, Any]) -> str:
    """A short stable hash of a JSON-serialisable key."""
    text = json.dumps(key, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


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
        return np.memmap(self.folder / FEATURES_NAME, dtype=np.float16, mode=mode, shape=self.shape)

    def done(self) -> np.ndarray:
        path = self.folder / DONE_NAME
        if path.is_file():
            done = np.load(path)
            if done.shape == (self.views, len(self.paths)):
                return done
        return np.zeros((self.views, len(self.paths)), dtype=bool)

    def _save_done(self, done: np.ndarray) -> None:
        with atomic_path(self.folder / DONE_NAME) as tmp, open(tmp, "wb") as handle:
            np.save(handle, done)

    @property
    def complete(self) -> bool:
        return bool(self.done().all())

    def view(self, view: int, indices: np.ndarray | None = None) -> np.ndarray:
        """float32 features [N, width] of one view (all images, or ``indices``)."""
        data = self.features()[view]
        return np.asarray(data if indices is None else data[indices], dtype=np.float32)


def open_cache(
    cache_root: Path, key: dict[str, Any], paths: Sequence[str], views: int, width: int
) -> FeatureCache:
    """The cache entry for ``key`` (created empty if new)."""
    folder = Path(cache_root) / key_digest(key)
    folder.mkdir(parents=True, exist_ok=True)
    cache = FeatureCache(folder=folder, paths=list(paths), views=views, width=width)
    key_file = folder / KEY_NAME
    feature_file = folder / FEATURES_NAME
    expected_bytes = int(np.prod(cache.shape)) * 2
    if not key_file.is_file() or not feature_file.is_file():
        atomic_write_json(key_file, key)
        with open(feature_file, "wb") as handle:
            handle.truncate(expected_bytes)
        (folder / DONE_NAME).unlink(missing_ok=True)
    elif feature_file.stat().st_size != expected_bytes:
        raise RuntimeError(f"{feature_file}: unexpected size; delete {folder} and rerun")
    return cache


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
) -> FeatureCache:
    """Compute the missing rows of every view: ``load(row, view)`` gives the image tensor,
    ``extract(batch)`` the features. Progress is saved every ``flush_every`` batches, so a
    killed run resumes where it stopped."""
    done = cache.done()
    missing = int((~done).sum())
    if not missing:
        return cache
    features = cache.features(mode="r+")
    bar = tqdm(total=missing, desc=desc, unit="img")
    for view in range(cache.views):
        rows = np.flatnonzero(~done[view])
        if not len(rows):
            continue
        loader = DataLoader(
            _RowsOfView(rows, load, view), batch_size=batch_size, num_workers=num_workers
        )
        for step, (images, batch_rows) in enumerate(loader, 1):
            out = extract(images).float().cpu().numpy().astype(np.float16)
            index = batch_rows.numpy()
            features[view, index] = out
            done[view, index] = True
            bar.update(len(index))
            if step % flush_every == 0:
                features.flush()
                cache._save_done(done)
    features.flush()
    cache._save_done(done)
    bar.close()
    return cache
