"""Train a detector on a manifest dataset, pick the best epoch on a held-out part of the train
split, then test on every source of the val split and write the results.

With no flags it trains on the embedded demo dataset on the CPU and finishes in minutes.
"""

from __future__ import annotations

import argparse
import copy
import os
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F  # noqa: N812
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from datagen.errors import UserError, exit_on_user_error
from datagen.manifest import ManifestRow, read_manifest, select
from datagen.readers import rows_from_class_folders
from UniversalFakeDetect import options
from UniversalFakeDetect.checkpoint import save_checkpoint
from UniversalFakeDetect.data.data_root import (
    DATA_ROOT_ENV,
    dataset_image_size,
    resolve_data_root,
)
from UniversalFakeDetect.data.datasets import ManifestImageDataset
from UniversalFakeDetect.data.transforms import TransformConfig, test_transform, train_transform
from UniversalFakeDetect.evaluation.metrics import best_threshold, evaluate_predictions
from UniversalFakeDetect.evaluation.plots import plot_all
from UniversalFakeDetect.evaluation.report import format_table, write_report
from UniversalFakeDetect.models.detector import Detector
from UniversalFakeDetect.models.registry import build_backbone, resolve_arch


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m UniversalFakeDetect.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    options.add_data_options(parser)
    options.add_model_options(parser)
    options.add_run_options(parser)
    options.add_training_options(parser)
    return parser


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def split_holdout(
    rows: Sequence[ManifestRow], fraction: float, seed: int
) -> tuple[list[ManifestRow], list[ManifestRow]]:
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


@torch.no_grad()
def predict(detector: Detector, loader: DataLoader, device: str, desc: str) -> np.ndarray:
    """P(fake) for every item of ``loader`` (in order)."""
    detector.eval()
    probs = []
    for images, _, _ in tqdm(loader, desc=desc, leave=False, unit="batch"):
        probs.append(torch.sigmoid(detector(images.to(device))).float().cpu())
    return torch.cat(probs).numpy() if probs else np.zeros(0)


def train_one_epoch(
    detector: Detector,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    device: str,
    desc: str,
) -> float:
    """One pass over ``loader``; returns the mean loss."""
    detector.train()
    total, count = 0.0, 0
    bar = tqdm(loader, desc=desc, unit="batch")
    for images, labels, _ in bar:
        logits = detector(images.to(device))
        loss = F.binary_cross_entropy_with_logits(logits, labels.float().to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(labels)
        count += len(labels)
        bar.set_postfix(loss=f"{total / count:.4f}")
    return total / max(count, 1)


def validate_args(args: argparse.Namespace) -> None:
    """Reject impossible option values before any data or model work."""
    resolve_arch(args.arch)
    checks = [
        (0 <= args.holdout_fraction < 1, "--holdout_fraction", "must be in [0, 1)"),
        (0 <= args.dropout < 1, "--dropout", "must be in [0, 1)"),
        (args.niter >= 1, "--niter", "must be at least 1"),
        (args.batch_size >= 1, "--batch_size", "must be at least 1"),
        (args.lr > 0, "--lr", "must be positive"),
        (args.num_threads >= 0, "--num_threads", "must be 0 or more"),
    ]
    for ok, flag, problem in checks:
        if not ok:
            raise UserError(f"{flag} {getattr(args, flag[2:])}: {problem}")
    if args.data_mode == "wang2020" and not args.wang2020_data_path:
        raise UserError("--data_mode wang2020 needs --wang2020_data_path")
    if args.crop_size and args.load_size and args.crop_size > args.load_size:
        raise UserError(f"--cropSize {args.crop_size}: larger than --loadSize {args.load_size}")


def _rows_and_root(args: argparse.Namespace) -> tuple[Path, list[ManifestRow], bool]:
    """Dataset root, its rows, and whether it is the embedded demo dataset."""
    if args.data_mode == "wang2020":
        root = Path(args.wang2020_data_path)
        train = rows_from_class_folders(root / "train", split="train", root=root)
        val = rows_from_class_folders(root / "val", split="val", root=root)
        return root, train + val, False
    is_demo = args.data_root is None and not os.environ.get(DATA_ROOT_ENV)
    root = resolve_data_root(args.data_root)
    return root, read_manifest(root), is_demo


def _loader(dataset: ManifestImageDataset, args: argparse.Namespace, shuffle: bool) -> DataLoader:
    generator = torch.Generator().manual_seed(args.seed)
    return DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=shuffle,
        num_workers=args.num_threads,
        generator=generator,
    )


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    validate_args(args)
    seed_everything(args.seed)
    device = options.choose_device(args.gpu_ids)
    root, rows, is_demo = _rows_and_root(args)
    weights = args.weights or ("none" if is_demo else "pretrained")
    if args.weights is None and is_demo:
        print(
            "note: embedded demo dataset -> random initialisation (--weights none); "
            "pass --weights pretrained to use downloaded weights",
            file=sys.stderr,
        )
    load_size = args.load_size or dataset_image_size(root)
    crop_size = args.crop_size or load_size * 7 // 8
    transforms = TransformConfig(load_size=load_size, crop_size=crop_size, flip=not args.no_flip)

    train_rows, holdout_rows = split_holdout(
        select(rows, split="train"), args.holdout_fraction, args.seed
    )
    test_rows = select(rows, split="val")
    if not train_rows or not test_rows:
        raise UserError(f"{root}: needs images in both the train and the val split")

    image_size = crop_size if weights == "none" else None
    backbone = build_backbone(args.arch, weights=weights, image_size=image_size)
    detector = Detector(backbone, dropout=args.dropout, fix_backbone=args.fix_backbone).to(device)
    optimizer = torch.optim.AdamW(
        detector.trainable_parameters(),
        lr=args.lr,
        betas=(args.beta1, 0.999),
        weight_decay=args.weight_decay,
    )
    train_loader = _loader(
        ManifestImageDataset(root, train_rows, train_transform(transforms)), args, shuffle=True
    )
    eval_tf = test_transform(transforms)
    holdout_loader = _loader(ManifestImageDataset(root, holdout_rows, eval_tf), args, False)
    test_loader = _loader(ManifestImageDataset(root, test_rows, eval_tf), args, False)

    print(
        f"{args.name}: {args.arch} ({weights} weights{', frozen' if args.fix_backbone else ''}) "
        f"on {root}: {len(train_rows)} train, {len(holdout_rows)} held out, "
        f"{len(test_rows)} test images, {load_size}->{crop_size} px, {device}"
    )
    checkpoint_dir = Path(args.checkpoints_dir) / args.name
    header = {
        "load_size": load_size,
        "crop_size": crop_size,
        "image_size_override": image_size,
        "options": {k: str(v) for k, v in sorted(vars(args).items())},
    }
    best_ap, best_state, history = -1.0, None, []
    start = time.perf_counter()
    for epoch in range(args.niter):
        loss = train_one_epoch(
            detector, train_loader, optimizer, device, f"epoch {epoch + 1}/{args.niter}"
        )
        holdout_probs = predict(detector, holdout_loader, device, "holdout")
        holdout = evaluate_predictions(holdout_rows, holdout_probs)
        ap = holdout.summary["ap"] or 0.0
        history.append({"epoch": epoch + 1, "loss": loss, "holdout_ap": ap})
        print(f"epoch {epoch + 1}: loss {loss:.4f}  holdout AP {100 * ap:.2f}")
        if ap > best_ap:
            best_ap, best_state = ap, copy.deepcopy(detector.state_dict())
            save_checkpoint(detector, checkpoint_dir / "model_best.safetensors", **header)
    train_seconds = time.perf_counter() - start
    if best_state is not None:
        detector.load_state_dict(best_state)

    holdout_probs = predict(detector, holdout_loader, device, "holdout")
    threshold = best_threshold(np.array([r.label for r in holdout_rows]), holdout_probs)
    test_probs = predict(detector, test_loader, device, "test")
    result = evaluate_predictions(
        test_rows,
        test_probs,
        tuned_threshold=threshold,
        training_sources={r.source for r in train_rows},
    )
    info = {
        "name": args.name,
        "arch": args.arch,
        "weights": weights,
        "fix_backbone": args.fix_backbone,
        "data_root": str(root),
        "checkpoint": str(checkpoint_dir / "model_best.safetensors"),
        "train_images": len(train_rows),
        "train_seconds": round(train_seconds, 1),
        "history": history,
    }
    folder = write_report(result, Path(args.result_folder) / args.name, test_rows, test_probs, info)
    plot_all(folder)
    print(format_table(result))
    print(f"results written to {folder} (metrics.json, metrics.csv, ap.txt, acc.txt, plots)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
