"""Train a detector, pick the best epoch on a held-out part of the train split, then test it on
every source of the val split and write the results.

With no flags it trains on the embedded demo dataset on the CPU (the demo preset) and finishes
in a few minutes. A killed run resumes from its last finished epoch when started again with the
same --name.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from active_learning.config import (
    ALConfig,
    ConfigError,
    active_learning_only_dests,
    add_active_learning_options,
    apply_preset,
    config_from_namespace,
    explicit_dests,
)
from datagen.manifest import select
from rfd_common.errors import UserError, exit_on_user_error
from rfd_common.files import ensure_writable_dir
from UniversalFakeDetect import options
from UniversalFakeDetect.features.shard import Shard
from UniversalFakeDetect.models.registry import resolve_arch

if TYPE_CHECKING:  # the heavy modules are imported in main(), so --help stays fast
    from UniversalFakeDetect.data.augment import AugmentConfig
    from UniversalFakeDetect.data.transforms import TransformConfig
    from UniversalFakeDetect.models.detector import Detector

# Options a resumed run must share with the run that left the state (--niter may grow).
RESUME_KEYS = (
    "arch", "weights", "fix_backbone", "dropout", "batch_size", "seed", "cache_views", "lr",
    "beta1", "weight_decay", "min_lr", "earlystop_epoch", "holdout_fraction", "blur_prob",
    "blur_sig", "jpg_prob", "jpg_method", "jpg_qual", "no_flip",
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m UniversalFakeDetect.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    options.add_data_options(parser)
    options.add_augment_options(parser)
    options.add_model_options(parser)
    options.add_run_options(parser, default_name=None)
    options.add_training_options(parser)
    add_active_learning_options(parser)
    return parser


def validate_args(args: argparse.Namespace) -> None:
    """Reject impossible option values before any data or model work."""
    checks = [
        (
            0 < args.holdout_fraction < 1,
            "--holdout_fraction",
            "must be in (0, 1): the held-out images pick the best epoch and the threshold",
        ),
        (0 <= args.beta1 < 1, "--beta1", "must be in [0, 1)"),
        (args.weight_decay >= 0, "--weight_decay", "must be 0 or more"),
        (args.min_lr >= 0, "--min_lr", "must be 0 or more"),
        (args.save_epoch_freq >= 0, "--save_epoch_freq", "must be 0 or more"),
        (
            len(args.blur_sig) in (1, 2) and 0 <= args.blur_sig[0] <= args.blur_sig[-1],
            "--blur_sig",
            "must be one sigma or a range LOW,HIGH with 0 <= LOW <= HIGH",
        ),
        (
            len(args.jpg_qual) in (1, 2) and 1 <= args.jpg_qual[0] <= args.jpg_qual[-1] <= 100,
            "--jpg_qual",
            "must be one quality or a range LOW,HIGH within 1..100",
        ),
        (
            all(size is None or size >= 1 for size in (args.load_size, args.crop_size)),
            "--loadSize/--cropSize",
            "must be at least 1",
        ),
        (0 <= args.dropout < 1, "--dropout", "must be in [0, 1)"),
        (args.niter >= 1, "--niter", "must be at least 1"),
        (args.batch_size >= 1, "--batch_size", "must be at least 1"),
        (args.lr > 0, "--lr", "must be positive"),
        (args.earlystop_epoch >= 1, "--earlystop_epoch", "must be at least 1"),
        (args.num_threads >= 0, "--num_threads", "must be 0 or more"),
        (args.cache_views is None or args.cache_views >= 0, "--cache_views", "must be 0 or more"),
        (0 <= args.blur_prob <= 1, "--blur_prob", "must be in [0, 1]"),
        (0 <= args.jpg_prob <= 1, "--jpg_prob", "must be in [0, 1]"),
    ]
    for ok, flag, problem in checks:
        if not ok:
            value = getattr(args, flag[2:], None)
            shown = flag if value is None else f"{flag} {value}"
            raise UserError(f"{shown}: {problem}")
    if args.extract_features_only and (not args.fix_backbone or args.no_cache):
        raise UserError("--extract_features_only needs --fix_backbone (and no --no_cache)")
    if Shard.from_env() is not None and not args.extract_features_only:
        raise UserError(
            "under torchrun only --extract_features_only is supported: extract the features "
            "with torchrun, then train in one process (it reads the cache)"
        )
    if args.data_mode == "wang2020" and not args.wang2020_data_path:
        raise UserError("--data_mode wang2020 needs --wang2020_data_path")
    resolve_arch(args.arch)


def split_holdout(rows: Sequence, fraction: float, seed: int) -> tuple[list, list]:
    """Hold out ``fraction`` of every source's rows (at least one each when fraction > 0)."""
    rng = np.random.default_rng(seed)
    keep, held = [], []
    for source in sorted({r.source for r in rows}):
        source_rows = [r for r in rows if r.source == source]
        order = rng.permutation(len(source_rows))
        count = max(1, round(fraction * len(source_rows))) if fraction > 0 else 0
        held += [source_rows[i] for i in order[:count]]
        keep += [source_rows[i] for i in order[count:]]
    return keep, held


def _tensorboard(log_dir: Path):
    """A scalar logger writing TensorBoard events (None when tensorboard is missing)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # pragma: no cover - tensorboard is a declared dependency
        return None, None
    writer = SummaryWriter(log_dir=str(log_dir))

    def log(record: dict[str, float], step: int) -> None:
        for key, value in record.items():
            if key != "epoch":
                writer.add_scalar(key, value, step)
        writer.flush()

    return writer, log


def extract_only(
    detector: Detector,
    root: Path,
    parts: dict[str, list],
    transform: TransformConfig,
    args: argparse.Namespace,
    device: str,
    augmentation: AugmentConfig,
) -> int:
    """Fill the feature caches of ``parts`` and stop (``--extract_features_only``).

    Under torchrun every rank extracts its share into its own shard files; after a barrier,
    rank 0 merges them into the caches.
    """
    from UniversalFakeDetect.features.cache import merge_shards
    from UniversalFakeDetect.pipeline import feature_cache

    shard = Shard.from_env()
    distributed = shard is not None
    if distributed:
        import torch
        import torch.distributed as dist

        if device.startswith("cuda"):
            torch.cuda.set_device(device)
        # ranks wait for the slowest at the end: allow for hours of extraction
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend, timeout=timedelta(hours=48))
    caches = []
    for name, rows in parts.items():
        train = name == "train"
        cache = feature_cache(
            detector, root, rows, transform, args, device, train, augmentation, name, shard
        )
        caches.append(cache)
    if distributed:
        dist.barrier()
        if shard.rank == 0:
            merged = sum(merge_shards(cache) for cache in caches)
            print(f"merged {merged} rows from {shard.world} ranks")
        dist.barrier()
        dist.destroy_process_group()
    if shard is None or shard.rank == 0:
        for name, cache in zip(parts, caches, strict=True):
            state = "complete" if cache.complete else "INCOMPLETE"
            size = f"{len(cache.paths)} images x {cache.views} views"
            print(f"{name} features: {size}, {state}: {cache.folder}")
    return 0


@dataclass
class ResolvedOptions:
    """The command line after presets and defaults: what a run does, before any work."""

    args: argparse.Namespace
    explicit: set[str]  # the options given on the command line
    al_config: ALConfig | None
    applied: list[str]  # what a preset filled in (printed)
    is_demo: bool


def resolve_options(argv: Sequence[str] | None) -> ResolvedOptions:
    """Parse ``argv`` and fill in presets and defaults: the paper's active-learning presets,
    the demo preset (named with ``--preset demo`` or implied by the embedded demo dataset:
    both give the same run), then the general defaults. Flags given always win."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from UniversalFakeDetect import al_training  # heavy imports after parsing (--help)
    from UniversalFakeDetect.pipeline import uses_demo

    explicit = explicit_dests(parser, argv)
    apply_preset(args, explicit)  # the paper's active-learning presets, if named
    ignored = sorted(explicit & active_learning_only_dests(parser))
    if ignored and not args.use_active_learning:
        flags = ", ".join(f"--{dest}" for dest in ignored)
        raise UserError(
            f"{flags}: active-learning options, but this run trains normally; add "
            "--use_active_learning (or run train_active_learning.sh)"
        )
    is_demo = uses_demo(args)
    applied = []
    demo_preset = args.preset == "demo" or (is_demo and args.preset is None)
    if args.use_active_learning and demo_preset:
        applied += al_training.apply_demo_active_learning(args, explicit)
    skip = ("niter", "earlystop_epoch") if args.use_active_learning else ()
    applied += options.apply_defaults(args, is_demo, skip=skip)
    al_config = None
    if args.use_active_learning:
        try:
            al_config = config_from_namespace(args)
        except ConfigError as exc:
            raise UserError(str(exc)) from exc
    if al_config is not None:
        args.niter, args.earlystop_epoch = al_config.niter, al_config.earlystop_epoch or 1
    if args.name is None:
        kind = "active_learning" if args.use_active_learning else "normal"
        args.name = f"demo_{kind}" if is_demo else kind
    validate_args(args)
    return ResolvedOptions(args, explicit, al_config, applied, is_demo)


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> int:
    resolved = resolve_options(argv)
    args, explicit, al_config = resolved.args, resolved.explicit, resolved.al_config
    from UniversalFakeDetect import al_training
    from UniversalFakeDetect.checkpoint import save_checkpoint
    from UniversalFakeDetect.engine.fit import FitConfig, fit
    from UniversalFakeDetect.engine.trainer import DetectorTrainer
    from UniversalFakeDetect.evaluation.metrics import best_threshold
    from UniversalFakeDetect.models.factory import backbone_input_size, create_detector
    from UniversalFakeDetect.pipeline import (
        augment_config,
        build_source,
        evaluate_and_report,
        load_rows,
        report_unreadable,
        resolve_cache_views,
        seed_everything,
        transform_config,
    )

    if resolved.applied:
        applied = " ".join(resolved.applied)
        print(f"{args.preset} preset: {applied} (flags you give win)", file=sys.stderr)
    device = options.choose_device(args.gpu_ids)
    if Shard.from_env() is not None and device.startswith("cuda"):
        device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"  # one GPU per torchrun rank
    root, rows = load_rows(args)
    transform = transform_config(args, root)
    augmentation = augment_config(args)
    views_note = resolve_cache_views(args, explicit, transform, augmentation)
    if views_note:
        print(views_note, file=sys.stderr)
    train_rows, holdout_rows = split_holdout(
        select(rows, split="train"), args.holdout_fraction, args.seed
    )
    test_rows = select(rows, split="val")
    if not train_rows or not holdout_rows or not test_rows:
        raise UserError(f"{root}: needs images in both the train and the val split")
    if len({r.label for r in train_rows}) < 2:
        raise UserError(f"{root}: the train split needs both real and fake images")
    # output folders are checked before any work, not after hours of it
    ensure_writable_dir(Path(args.checkpoints_dir) / args.name, flag="--checkpoints_dir")
    ensure_writable_dir(Path(args.result_folder) / args.name, flag="--result_folder")

    seed_everything(args.seed)
    detector, _ = create_detector(
        args.arch, args.weights, transform.crop_size, dropout=args.dropout,
        fix_backbone=args.fix_backbone,
    )  # fmt: skip
    detector = detector.to(device)
    image_size = backbone_input_size(resolve_arch(args.arch), args.weights, transform.crop_size)
    print(
        f"{args.name}: {args.arch} ({args.weights} weights"
        f"{', frozen' if args.fix_backbone else ''}) on {root}: {len(train_rows)} train, "
        f"{len(holdout_rows)} held out, {len(test_rows)} test images, "
        f"{transform.load_size}->{transform.crop_size} px, {device}"
    )
    if args.extract_features_only:
        parts = {"train": train_rows, "holdout": holdout_rows, "test": test_rows}
        return extract_only(detector, root, parts, transform, args, device, augmentation)
    train_source = build_source(
        detector, root, train_rows, transform, args, device, True, augmentation, "train features"
    )
    holdout_source = build_source(
        detector, root, holdout_rows, transform, args, device, False, desc="holdout features"
    )
    test_source = build_source(
        detector, root, test_rows, transform, args, device, False, desc="test features"
    )
    trainer = DetectorTrainer(
        detector,
        train_source,
        holdout_source,
        lr=args.lr,
        beta1=args.beta1,
        weight_decay=args.weight_decay,
        batch_size=args.batch_size,
    )
    checkpoint_dir = Path(args.checkpoints_dir) / args.name
    header = {
        "load_size": transform.load_size,
        "crop_size": transform.crop_size,
        "image_size_override": image_size,
        "backbone_seed": args.seed,
        "data_root": str(root),
        "options": {k: str(v) for k, v in sorted(vars(args).items())},
    }

    def save(path: Path, **extra) -> None:
        save_checkpoint(detector, path, **header, **extra)

    if al_config is not None:
        sources = {
            "train": train_source,
            "holdout": holdout_source,
            "test": test_source,
            "train_rows": train_rows,
            "test_rows": test_rows,
        }
        try:
            return al_training.run(args, al_config, trainer, sources, header)
        except ConfigError as exc:  # e.g. a pool too small for the initial set
            raise UserError(str(exc)) from exc

    writer, log = _tensorboard(checkpoint_dir / "tensorboard")
    start = time.perf_counter()
    state = fit(
        trainer,
        FitConfig(
            niter=args.niter,
            seed=args.seed,
            earlystop_epoch=args.earlystop_epoch,
            min_lr=args.min_lr,
            save_epoch_freq=args.save_epoch_freq,
        ),
        checkpoint_dir,
        save,
        log,
        resume=not args.restart,
        run_key=json.dumps(
            {k: header[k] for k in ("load_size", "crop_size", "backbone_seed", "data_root")}
            | {"definition": detector.definition}
            | {k: str(getattr(args, k)) for k in RESUME_KEYS},
            sort_keys=True,
        ),
    )
    if writer is not None:
        writer.close()
    train_seconds = time.perf_counter() - start

    holdout_probs = trainer.predict(holdout_source)
    finite = np.isfinite(holdout_probs)
    threshold = best_threshold(holdout_source.labels[finite], holdout_probs[finite])
    best_path = checkpoint_dir / "model_best.safetensors"
    save(best_path, threshold=threshold, best_epoch=state.best_epoch)
    info = {
        "name": args.name,
        "arch": args.arch,
        "weights": args.weights,
        "fix_backbone": args.fix_backbone,
        "preset": args.preset,
        "data_root": str(root),
        "checkpoint": str(best_path),
        "train_images": len(train_rows),
        "holdout_images": len(holdout_rows),
        "best_epoch": state.best_epoch,
        "train_seconds": round(train_seconds, 1),
        "threshold_source": "holdout part of the train split",
        "history": state.history,
        "feature_cache": bool(args.fix_backbone and not args.no_cache),
        "cache_views": args.cache_views if args.fix_backbone else None,
    }
    folder = Path(args.result_folder) / args.name
    result = evaluate_and_report(
        detector,
        test_source,
        test_rows,
        folder,
        info,
        tuned_threshold=threshold,
        training_sources={r.source for r in train_rows},
        root=root,
    )
    report_unreadable([("train", train_source), ("holdout", holdout_source), ("test", test_source)])
    seen = result.summary.get("mean_ap_seen")
    if seen is not None:
        print(f"mean AP over generators seen in training: {100 * seen:.2f}")
    print(f"results written to {folder} (metrics.json, metrics.csv, ap.txt, acc.txt, plots)")
    print(f"checkpoint: {best_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
