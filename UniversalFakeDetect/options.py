"""Command-line options. The original project's flag names keep working."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from datagen.errors import UserError
from UniversalFakeDetect.models.registry import ARCHS, WEIGHT_CHOICES

DEMO_ARCH = "Imagenet:resnet18"


def _gpu_ids(text: str) -> list[int]:
    try:
        ids = [int(t) for t in text.split(",") if t.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from exc
    return [] if ids == [-1] else ids


def add_data_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data")
    group.add_argument(
        "--data_root",
        "--dataroot",
        dest="data_root",
        help="dataset folder holding manifest.csv (default: $RFD_DATA_ROOT, else the embedded "
        "demo dataset, generated into the cache on first use)",
    )
    group.add_argument(
        "--data_mode",
        choices=("dip", "wang2020"),
        default="dip",
        help="dip: a manifest dataset (ImageData/{train,val}); wang2020: 0_real/1_fake "
        "generator folders given by --wang2020_data_path",
    )
    group.add_argument("--wang2020_data_path", help="root of 0_real/1_fake generator folders")
    group.add_argument(
        "--loadSize",
        "--load_size",
        dest="load_size",
        type=int,
        help="resize images to this square first (default: the dataset's image size)",
    )
    group.add_argument(
        "--cropSize",
        "--crop_size",
        dest="crop_size",
        type=int,
        help="then crop to this (random in training, centred in testing; default 7/8 of loadSize)",
    )
    group.add_argument("--no_flip", action="store_true", help="no random horizontal flips")
    group.add_argument(
        "--num_threads",
        type=int,
        default=0,
        help="data-loading worker processes (default 0: load in the main process)",
    )


def add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--arch",
        default=DEMO_ARCH,
        help=f"backbone (default {DEMO_ARCH}); one of: {', '.join(ARCHS)}",
    )
    group.add_argument(
        "--weights",
        choices=WEIGHT_CHOICES,
        help="pretrained (ImageNet / OpenAI CLIP) or none (random initialisation). Default: "
        "pretrained, except none on the embedded demo dataset (no download needed)",
    )
    group.add_argument(
        "--fix_backbone", action="store_true", help="freeze the backbone; train the head only"
    )
    group.add_argument("--dropout", type=float, default=0.5, help="dropout before the head")


def add_run_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("run")
    group.add_argument("--name", default="demo_normal", help="experiment name")
    group.add_argument("--seed", type=int, default=0, help="random seed")
    group.add_argument("--batch_size", type=int, default=64, help="batch size")
    group.add_argument(
        "--checkpoints_dir",
        type=Path,
        default=Path(os.environ.get("RFD_CHECKPOINTS_DIR", "checkpoints")),
        help="where checkpoints go: CHECKPOINTS_DIR/NAME/ (default ./checkpoints, or "
        "$RFD_CHECKPOINTS_DIR)",
    )
    group.add_argument(
        "--result_folder",
        "--results_dir",
        dest="result_folder",
        type=Path,
        default=Path(os.environ.get("RFD_RESULTS_DIR", "results")),
        help="where results go: RESULT_FOLDER/NAME/ (default ./results, or $RFD_RESULTS_DIR)",
    )
    group.add_argument(
        "--gpu_ids",
        type=_gpu_ids,
        default=None,
        help="GPU ids, e.g. 0 or 0,1; -1 for CPU (default: GPU 0 if available, else CPU)",
    )


def add_training_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training")
    group.add_argument("--niter", type=int, default=8, help="training epochs")
    group.add_argument("--lr", type=float, default=1e-3, help="initial learning rate")
    group.add_argument("--beta1", type=float, default=0.9, help="Adam beta1")
    group.add_argument("--weight_decay", type=float, default=0.0, help="AdamW weight decay")
    group.add_argument(
        "--holdout_fraction",
        type=float,
        default=0.1,
        help="fraction of the train split held out (per source) to pick the best epoch and "
        "the decision threshold; the val split is only tested on",
    )


def choose_device(gpu_ids: list[int] | None) -> str:
    """``cuda:N`` for the first requested GPU, else ``cpu``; ``None`` = GPU 0 if available."""
    import torch

    if gpu_ids is None:
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if not gpu_ids:
        return "cpu"
    if not torch.cuda.is_available():
        raise UserError(f"--gpu_ids {gpu_ids[0]}: no GPU available here; use --gpu_ids -1")
    return f"cuda:{gpu_ids[0]}"
