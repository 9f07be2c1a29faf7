"""Fill the feature cache for a frozen detector over manifest rows."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from datagen.manifest import ManifestRow
from UniversalFakeDetect.data.augment import AugmentConfig
from UniversalFakeDetect.data.datasets import UnreadableImageError, read_image
from UniversalFakeDetect.data.transforms import TransformConfig, eval_view, train_view
from UniversalFakeDetect.features.cache import (
    FeatureCache,
    Shard,
    fill_cache,
    images_fingerprint,
    open_cache,
)
from UniversalFakeDetect.models.detector import Detector

CACHE_FORMAT = 2  # 2: float32 features, keyed by the network's definition


def cache_key(
    detector: Detector,
    root: Path,
    rows: Sequence[ManifestRow],
    transform: TransformConfig,
    augmentation: AugmentConfig | None,
    views: int,
    seed: int,
) -> dict:
    """Everything the cached features depend on: the exact network (its definition), its
    weights (a named pretrained set, else a hash of the weights themselves), the preprocessing
    and the images."""
    key = {
        "format": CACHE_FORMAT,
        "arch": detector.arch,
        "definition": detector.definition,
        "weights": detector.weights,
        "weights_digest": detector.backbone_digest() if detector.weights != "pretrained" else None,
        "transform": asdict(transform),
        "views": views,
        "images": images_fingerprint(root, [r.path for r in rows]),
        "count": len(rows),
    }
    if views > 1:
        key["augment"] = asdict(augmentation) if augmentation else None
        key["view_seed"] = seed
    return key


def cached_features(
    detector: Detector,
    root: Path,
    rows: Sequence[ManifestRow],
    transform: TransformConfig,
    cache_dir: Path,
    device: str,
    augmentation: AugmentConfig | None = None,
    extra_views: int = 0,
    seed: int = 0,
    batch_size: int = 64,
    num_workers: int = 0,
    strict: bool = False,
    desc: str = "features",
    shard: Shard | None = None,
) -> FeatureCache:
    """The cache of ``rows``' features: view 0 the test view, then ``extra_views`` seeded
    training views. Computed only where missing; unreadable images get NaN features (or raise
    with ``strict``). With a ``shard``, only its rows (see :class:`Shard`)."""
    views = 1 + extra_views
    key = cache_key(detector, root, rows, transform, augmentation, views, seed)
    cache = open_cache(cache_dir, key, [r.path for r in rows], views, detector.width)

    def load(row: int, view: int) -> torch.Tensor:
        try:
            image = read_image(Path(root) / rows[row].path)
        except UnreadableImageError:
            if strict:
                raise
            return torch.full((3, transform.crop_size, transform.crop_size), math.nan)
        if view == 0:
            return eval_view(image, transform)
        rng = np.random.default_rng([seed, view, row])
        return train_view(image, rng, transform, augmentation)

    detector.eval()

    def extract(images: torch.Tensor) -> torch.Tensor:
        bad = ~torch.isfinite(images.flatten(1)).all(dim=1)
        features = detector.features(torch.nan_to_num(images).to(device))
        features[bad.to(features.device)] = math.nan
        return features

    return fill_cache(
        cache, extract, load, batch_size=batch_size, num_workers=num_workers, desc=desc,
        shard=shard,
    )  # fmt: skip
