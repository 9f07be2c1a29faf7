"""Shared steps of the entry points: find the data, build the detector, build batch sources
(images or cached features), evaluate and write the reports."""

from __future__ import annotations

import argparse
import os
import random
import sys
from collections.abc import Sequence
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
from UniversalFakeDetect.data.augment import AugmentConfig
from UniversalFakeDetect.data.data_root import DATA_ROOT_ENV, dataset_image_size, resolve_data_root
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


def uses_demo(args: argparse.Namespace) -> bool:
    """True when no dataset was named: the embedded demo dataset will be used."""
    return args.data_mode == "dip" and args.data_root is None and not os.environ.get(DATA_ROOT_ENV)


def load_rows(args: argparse.Namespace) -> tuple[Path, list[ManifestRow]]:
    """The dataset root and its rows (manifest, or 0_real/1_fake folders for wang2020)."""
    if args.data_mode == "wang2020":
        root = Path(args.wang2020_data_path)
        if not root.is_dir():
            raise UserError(f"--wang2020_data_path {root}: folder not found")
        rows = []
        for split in ("train", "val"):
            if (root / split).is_dir():
                rows += rows_from_class_folders(root / split, split=split, root=root)
        if not rows:
            raise UserError(f"--wang2020_data_path {root}: expected train/ and val/ folders")
        return root, rows
    root = resolve_data_root(args.data_root)
    return root, read_manifest(root)


def transform_config(args: argparse.Namespace, root: Path) -> TransformConfig:
    load_size = args.load_size or dataset_image_size(root)
    crop_size = args.crop_size or load_size * 7 // 8
    if crop_size > load_size:
        raise UserError(f"--cropSize {crop_size}: larger than --loadSize {load_size}")
    return TransformConfig(load_size=load_size, crop_size=crop_size, flip=not args.no_flip)


def augment_config(args: argparse.Namespace) -> AugmentConfig:
    try:
        return AugmentConfig(
            blur_prob=args.blur_prob,
            blur_sig=args.blur_sig,
            jpg_prob=args.jpg_prob,
            jpg_method=args.jpg_method,
            jpg_qual=args.jpg_qual,
        )
    except ValueError as exc:
        raise UserError(f"--jpg_method {','.join(args.jpg_method)}: {exc}") from exc


# Augmented views cached per training image with a frozen backbone (besides the centre view).
DEFAULT_CACHE_VIEWS = 4


def resolve_cache_views(
    args: argparse.Namespace,
    explicit: set[str],
    transform: TransformConfig,
    augmentation: AugmentConfig,
) -> str | None:
    """Set ``args.cache_views`` and return a line saying what it costs or leaves out.

    With a frozen backbone the head trains on cached features, so augmentation exists only as
    cached views. Unset, it is :data:`DEFAULT_CACHE_VIEWS` whenever the training view varies
    (blur, JPEG, random crop or flip); an explicit 0 next to explicit blur/JPEG flags is a
    contradiction and is refused."""
    if not args.fix_backbone or args.no_cache:
        args.cache_views = args.cache_views or 0  # images are augmented afresh every epoch
        return None
    varies = augmentation.active or transform.flip or transform.crop_size < transform.load_size
    if args.cache_views is None:
        args.cache_views = DEFAULT_CACHE_VIEWS if varies else 0
        if not args.cache_views:
            return None
        return (
            f"frozen backbone: {args.cache_views} augmented views of every training image are "
            f"cached besides its centre view, one drawn per epoch (the backbone runs "
            f"{args.cache_views + 1}x over the train split, once; later runs reuse the cache). "
            "--cache_views 0 trains on centre views only; --no_cache augments afresh every "
            "epoch but runs the backbone on every batch"
        )
    if args.cache_views == 0 and varies:
        asked = [
            f"--{name} {getattr(args, name):g}"
            for name in ("blur_prob", "jpg_prob")
            if name in explicit and getattr(args, name) > 0
        ]
        if asked:
            raise UserError(
                f"--cache_views 0 with --fix_backbone trains the head on each image's centre "
                f"view only, so {' and '.join(asked)} would do nothing: drop --cache_views 0 "
                f"(cached augmented views, {DEFAULT_CACHE_VIEWS} by default), or pass "
                "--no_cache (augment every epoch, the backbone runs on every batch)"
            )
        return (
            "--cache_views 0: the head trains on each training image's centre view; blur, "
            "JPEG, random crops and flips are not used"
        )
    return None


@dataclass
class Sources:
    """The batch sources of one run and the rows behind them."""

    train: BatchSource
    holdout: BatchSource
    test: BatchSource
    train_rows: list[ManifestRow]
    holdout_rows: list[ManifestRow]
    test_rows: list[ManifestRow]


def feature_cache(
    detector: Detector,
    root: Path,
    rows: Sequence[ManifestRow],
    transform: TransformConfig,
    args: argparse.Namespace,
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
        extra_views=args.cache_views if train else 0,
        seed=args.seed,
        batch_size=args.batch_size,
        num_workers=args.num_threads,
        strict=args.strict,
        desc=desc,
        shard=shard,
    )


def build_source(
    detector: Detector,
    root: Path,
    rows: Sequence[ManifestRow],
    transform: TransformConfig,
    args: argparse.Namespace,
    device: str,
    train: bool,
    augmentation: AugmentConfig | None = None,
    desc: str = "features",
) -> BatchSource:
    """Cached features for a frozen backbone (unless ``--no_cache``), else decoded images."""
    if detector.fix_backbone and not getattr(args, "no_cache", False):
        cache = feature_cache(
            detector, root, rows, transform, args, device, train, augmentation, desc
        )
        labels = np.array([r.label for r in rows])
        return FeatureSource(cache, labels, device, train_views=train)
    make_view = (
        EpochTrainViews(transform, augmentation, args.seed) if train else eval_views(transform)
    )
    dataset = ManifestImageDataset(
        root, rows, make_view, crop_size=transform.crop_size, strict=args.strict
    )
    return ImageSource(dataset, device, num_workers=args.num_threads)


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
) -> EvaluationResult:
    """Predict, compute per-source metrics, write every result file and plot, print the table.

    Images that could not be read are left out of the metrics and named, with the reason when
    ``root`` is given, on stderr and in ``unreadable.csv``."""
    probs = predict(detector, source, batch_size)
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
