"""Shared steps of the entry points: find the data, build the detector, build batch sources
(images or cached features), evaluate and write the reports."""

from __future__ import annotations

import random
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from datagen.manifest import ManifestRow, read_manifest
from datagen.readers import rows_from_class_folders
from rfd_common.errors import UserError
from rfd_common.files import atomic_write_text
from rfd_common.tables import csv_text
from UniversalFakeDetect.config import DataConfig, TrainSettings
from UniversalFakeDetect.data.augment import AugmentConfig
from UniversalFakeDetect.data.data_root import dataset_image_size, resolve_data_root
from UniversalFakeDetect.data.datasets import (
    EpochTrainViews,
    ManifestImageDataset,
    UnreadableImageError,
    eval_views,
    read_image,
)
from UniversalFakeDetect.data.transforms import TransformConfig
from UniversalFakeDetect.engine.sources import (
    BatchSource,
    FeatureSource,
    ImageSource,
    default_cache_dir,
)
from UniversalFakeDetect.engine.trainer import predict
from UniversalFakeDetect.evaluation.metrics import EvaluationResult, evaluate_predictions
from UniversalFakeDetect.evaluation.plots import plot_all
from UniversalFakeDetect.evaluation.report import format_table, write_report
from UniversalFakeDetect.features.cache import FeatureCache, Shard
from UniversalFakeDetect.features.extract import cached_features
from UniversalFakeDetect.models.detector import Detector


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_rows(data: DataConfig) -> tuple[Path, list[ManifestRow]]:
    """The dataset root and its rows (manifest, or 0_real/1_fake folders for wang2020)."""
    if data.data_mode == "wang2020":
        root = Path(data.wang2020_data_path)  # type: ignore[arg-type]
        if not root.is_dir():
            raise UserError(f"--wang2020_data_path {root}: folder not found")
        rows = []
        for split in ("train", "val"):
            if (root / split).is_dir():
                rows += rows_from_class_folders(root / split, split=split, root=root)
        if not rows:
            raise UserError(f"--wang2020_data_path {root}: expected train/ and val/ folders")
        return root, rows
    root = resolve_data_root(data.data_root)
    return root, read_manifest(root)


def transform_config(data: DataConfig, root: Path, resize: bool = True) -> TransformConfig:
    """The views of ``data``: ``--loadSize`` (default: the dataset's image size) and
    ``--cropSize`` (default 7/8 of it)."""
    load_size = data.load_size or dataset_image_size(root)
    crop_size = data.crop_size or load_size * 7 // 8
    if resize and crop_size > load_size:
        raise UserError(f"--cropSize {crop_size}: larger than --loadSize {load_size}")
    return TransformConfig(load_size=load_size, crop_size=crop_size, flip=data.flip, resize=resize)


@dataclass(frozen=True)
class SourceOptions:
    """How batch sources are built: cached features (a frozen backbone) or decoded images."""

    cached: bool
    views: int = 0  # augmented views cached per training image
    seed: int = 0
    batch_size: int = 64
    num_threads: int = 0
    strict: bool = False

    @classmethod
    def for_training(cls, settings: TrainSettings, views: int) -> SourceOptions:
        return cls(
            cached=settings.model.fix_backbone and not settings.cache.no_cache,
            views=views,
            seed=settings.run.seed,
            batch_size=settings.optim.batch_size,
            num_threads=settings.data.num_threads,
            strict=settings.data.strict,
        )


# Augmented views cached per training image with a frozen backbone (besides the centre view).
DEFAULT_CACHE_VIEWS = 4


def resolve_cache_views(
    settings: TrainSettings, transform: TransformConfig
) -> tuple[int, str | None]:
    """The augmented views to cache per training image, and a line saying what it costs or
    leaves out.

    With a frozen backbone the head trains on cached features, so augmentation exists only as
    cached views. Unset, it is :data:`DEFAULT_CACHE_VIEWS` whenever the training view varies
    (blur, JPEG, random crop or flip); an explicit 0 next to explicit blur/JPEG flags is a
    contradiction and is refused."""
    asked = settings.cache.cache_views
    if not settings.model.fix_backbone or settings.cache.no_cache:
        return asked or 0, None  # images are augmented afresh every epoch
    augmentation = settings.augment
    varies = augmentation.active or transform.flip or transform.crop_size < transform.load_size
    if asked is None:
        views = DEFAULT_CACHE_VIEWS if varies else 0
        if not views:
            return 0, None
        return views, (
            f"frozen backbone: {views} augmented views of every training image are cached "
            f"besides its centre view, one drawn per epoch (the backbone runs {views + 1}x over "
            "the train split, once; later runs reuse the cache). --cache_views 0 trains on "
            "centre views only; --no_cache augments afresh every epoch but runs the backbone "
            "on every batch"
        )
    if asked == 0 and varies:
        flags = [
            f"--{name} {getattr(augmentation, name):g}"
            for name in ("blur_prob", "jpg_prob")
            if name in settings.explicit and getattr(augmentation, name) > 0
        ]
        if flags:
            raise UserError(
                f"--cache_views 0 with --fix_backbone trains the head on each image's centre "
                f"view only, so {' and '.join(flags)} would do nothing: drop --cache_views 0 "
                f"(cached augmented views, {DEFAULT_CACHE_VIEWS} by default), or pass "
                "--no_cache (augment every epoch, the backbone runs on every batch)"
            )
        return 0, (
            "--cache_views 0: the head trains on each training image's centre view; blur, "
            "JPEG, random crops and flips are not used"
        )
    return asked, None


def feature_cache(
    detector: Detector,
    root: Path,
    rows: Sequence[ManifestRow],
    transform: TransformConfig,
    options: SourceOptions,
    device: str,
    train: bool,
    augmentation: AugmentConfig | None = None,
    desc: str = "features",
    shard: Shard | None = None,
) -> FeatureCache:
    """The filled feature cache of ``rows`` for a frozen backbone (only ``shard``'s rows)."""
    return cached_features(
        detector,
        root,
        rows,
        transform,
        cache_dir=default_cache_dir(),
        device=device,
        augmentation=augmentation,
        extra_views=options.views if train else 0,
        seed=options.seed,
        batch_size=options.batch_size,
        num_workers=options.num_threads,
        strict=options.strict,
        desc=desc,
        shard=shard,
    )


def build_source(
    detector: Detector,
    root: Path,
    rows: Sequence[ManifestRow],
    transform: TransformConfig,
    options: SourceOptions,
    device: str,
    train: bool,
    augmentation: AugmentConfig | None = None,
    desc: str = "features",
) -> BatchSource:
    """Cached features for a frozen backbone (``options.cached``), else decoded images."""
    if detector.fix_backbone and options.cached:
        cache = feature_cache(
            detector, root, rows, transform, options, device, train, augmentation, desc
        )
        labels = np.array([r.label for r in rows])
        return FeatureSource(cache, labels, device, train_views=train)
    make_view = (
        EpochTrainViews(transform, augmentation, options.seed) if train else eval_views(transform)
    )
    dataset = ManifestImageDataset(
        root, rows, make_view, crop_size=transform.crop_size, strict=options.strict
    )
    return ImageSource(dataset, device, num_workers=options.num_threads)


def share_unreadable(sources: Iterable[Any]) -> None:
    """Under torchrun: every rank's sources learn the unreadable images the others found in
    their shares (call on every rank; non-sources are skipped)."""
    from UniversalFakeDetect.engine.distributed import union_over_ranks

    for source in sources:
        if isinstance(getattr(source, "unreadable", None), set):
            source.unreadable |= union_over_ranks(source.unreadable)


def report_unreadable(sources: Sequence[tuple[str, BatchSource]]) -> dict[str, int]:
    counts = {name: len(source.unreadable) for name, source in sources}
    if any(counts.values()):
        print(
            f"skipped unreadable images: {counts} (use --strict to stop instead)", file=sys.stderr
        )
    return counts


def evaluate_and_report(
    detector: Detector,
    source: BatchSource,
    rows: Sequence[ManifestRow],
    folder: Path,
    info: dict[str, Any],
    tuned_threshold: float | None,
    training_sources: set[str] | None,
    batch_size: int = 256,
    root: Path | None = None,
    probs: np.ndarray | None = None,
) -> EvaluationResult:
    """Predict (unless ``probs`` are given), compute per-source metrics, write every result file
    and plot, print the table.

    Images that could not be read are left out of the metrics and named, with the reason when
    ``root`` is given, on stderr and in ``unreadable.csv``."""
    probs = predict(detector, source, batch_size) if probs is None else probs
    keep = np.isfinite(probs)
    kept_rows = [r for r, k in zip(rows, keep, strict=True) if k]
    result = evaluate_predictions(
        kept_rows,
        probs[keep],
        tuned_threshold=tuned_threshold,
        training_sources=training_sources,
    )
    result.summary["unreadable_images"] = int((~keep).sum())
    folder = write_report(result, folder, kept_rows, probs[keep], info)
    unreadable = [r for r, k in zip(rows, keep, strict=True) if not k]
    if unreadable:
        write_unreadable(unreadable, root, folder)
    plot_all(folder)
    print(format_table(result))
    return result


def write_unreadable(rows: Sequence[ManifestRow], root: Path | None, folder: Path) -> None:
    """Name the images left out as unreadable, with the decoder's reason (read again here:
    only the failed files are), on stderr (the first ten) and in ``unreadable.csv``."""
    listed = []
    for row in rows:
        reason = "could not be read"
        if root is not None:
            try:
                read_image(Path(root) / row.path)
                reason = "could not be read during the run"
            except UnreadableImageError as exc:
                reason = exc.reason
        listed.append((row.path, row.source, reason))
    for path, _, reason in listed[:10]:
        print(f"not tested: {path}: {reason}", file=sys.stderr)
    if len(listed) > 10:
        print(f"... and {len(listed) - 10} more (see unreadable.csv)", file=sys.stderr)
    atomic_write_text(folder / "unreadable.csv", csv_text(("path", "source", "reason"), listed))
