"""Command-line options. The original project's flag names keep working.

Options that a preset may set default to ``None`` in argparse; :func:`apply_defaults` fills them
from the preset (the demo preset is used automatically on the embedded demo dataset), then from
the general defaults. A flag given on the command line always wins.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from rfd_common.errors import UserError
from UniversalFakeDetect.models.registry import ARCHS, WEIGHT_CHOICES

GENERAL_DEFAULTS: dict[str, Any] = {
    "arch": "CLIP:RN50",
    "weights": "pretrained",
    "niter": 100,
    "lr": 1e-4,
    "batch_size": 256,
    "earlystop_epoch": 5,
    "blur_prob": 0.5,
    "jpg_prob": 0.5,
}
# The embedded demo: 64 px images, no downloads, a few minutes on 2 CPU cores.
DEMO_PRESET: dict[str, Any] = {
    "arch": "Imagenet:resnet18",
    "weights": "none",
    "niter": 12,
    "lr": 1e-3,
    "batch_size": 64,
    "earlystop_epoch": 2,
    "blur_prob": 0.0,
    "jpg_prob": 0.0,
}
PRESETS = {"demo": DEMO_PRESET}


def _csv_floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected numbers like 0.0,3.0, got {text!r}") from exc


def _csv_ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected integers like 30,100, got {text!r}") from exc


def _csv_words(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _gpu_ids(text: str) -> list[int]:
    ids = _csv_ints(text)
    return [] if list(ids) == [-1] else list(ids)


def default_checkpoints_dir() -> Path:
    """``$RFD_CHECKPOINTS_DIR``, else ``./checkpoints``."""
    return Path(os.environ.get("RFD_CHECKPOINTS_DIR", "checkpoints"))


def add_bare_head_options(parser: argparse.ArgumentParser) -> None:
    """``--arch``/``--weights`` for a published bare linear head passed as ``--ckpt x.pth``."""
    parser.add_argument(
        "--arch",
        help="backbone for a bare linear head (.pth or .safetensors) or an original "
        "UniversalFakeDetect/CS545 checkpoint, e.g. CLIP:ViT-L/14 for UFD's fc_weights.pth; "
        "a toolkit checkpoint names its own",
    )
    parser.add_argument(
        "--weights",
        choices=WEIGHT_CHOICES,
        help="backbone weights for a bare head (pretrained); a checkpoint names its own",
    )


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
        help="dip: a manifest dataset; wang2020: 0_real/1_fake generator folders under "
        "--wang2020_data_path/{train,val}",
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
        "--num_threads", type=int, default=0, help="data-loading worker processes (default 0)"
    )
    group.add_argument(
        "--strict",
        action="store_true",
        help="stop at the first unreadable image (default: skip and count them)",
    )


def add_augment_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("augmentation (training)")
    group.add_argument("--blur_prob", type=float, help="probability of Gaussian blur (0.5)")
    group.add_argument(
        "--blur_sig", type=_csv_floats, default=(0.0, 3.0), help="blur sigma range (0.0,3.0)"
    )
    group.add_argument("--jpg_prob", type=float, help="probability of JPEG re-compression (0.5)")
    group.add_argument(
        "--jpg_method", type=_csv_words, default=("cv2", "pil"), help="JPEG encoders (cv2,pil)"
    )
    group.add_argument(
        "--jpg_qual", type=_csv_ints, default=(30, 100), help="JPEG quality range (30,100)"
    )


def add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--arch",
        help=f"backbone (default {GENERAL_DEFAULTS['arch']}; {DEMO_PRESET['arch']} on the demo "
        f"dataset); one of: {', '.join(ARCHS)}",
    )
    group.add_argument(
        "--weights",
        choices=WEIGHT_CHOICES,
        help="pretrained (ImageNet / OpenAI CLIP) or none (random initialisation). Default: "
        "pretrained; none on the embedded demo dataset (nothing to download)",
    )
    group.add_argument(
        "--fix_backbone", action="store_true", help="freeze the backbone; train the head only"
    )
    group.add_argument("--dropout", type=float, default=0.5, help="dropout before the head (0.5)")


def add_run_options(parser: argparse.ArgumentParser, default_name: str | None) -> None:
    group = parser.add_argument_group("run")
    name_help = (
        "experiment name (demo_normal or demo_active_learning on the demo dataset, else normal "
        "or active_learning)"
        if default_name is None
        else f"experiment name ({default_name or 'the checkpoint run name'})"
    )
    group.add_argument("--name", default=default_name, help=name_help)
    group.add_argument("--seed", type=int, default=0, help="random seed (0)")
    group.add_argument("--batch_size", type=int, help="batch size (256; 64 on the demo)")
    group.add_argument(
        "--checkpoints_dir",
        type=Path,
        default=default_checkpoints_dir(),
        help="checkpoints go to CHECKPOINTS_DIR/NAME/ (./checkpoints or $RFD_CHECKPOINTS_DIR)",
    )
    group.add_argument(
        "--result_folder",
        "--results_dir",
        dest="result_folder",
        type=Path,
        default=Path(os.environ.get("RFD_RESULTS_DIR", "results")),
        help="results go to RESULT_FOLDER/NAME/ (./results or $RFD_RESULTS_DIR)",
    )
    group.add_argument(
        "--gpu_ids",
        type=_gpu_ids,
        default=None,
        help="GPU id, e.g. 0 (only the first of a list is used); -1 for the CPU "
        "(default: GPU 0 if available)",
    )
    group.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="a bundle of defaults; 'demo' is used automatically on the demo dataset",
    )


def add_training_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training")
    group.add_argument(
        "--niter",
        type=int,
        help="maximum epochs (100; 12 on the demo); with --use_active_learning: epochs per "
        "query round (5; 4 on the demo)",
    )
    group.add_argument("--lr", type=float, help="initial learning rate (1e-4; 1e-3 on the demo)")
    group.add_argument("--beta1", type=float, default=0.9, help="Adam beta1 (0.9)")
    group.add_argument("--weight_decay", type=float, default=0.0, help="AdamW weight decay (0)")
    group.add_argument(
        "--earlystop_epoch",
        type=int,
        help="patience: epochs without validation gain before the LR drops 10x (5; 2 on demo)",
    )
    group.add_argument(
        "--min_lr", type=float, default=1e-6, help="stop when the LR falls below this (1e-6)"
    )
    group.add_argument(
        "--save_epoch_freq",
        type=int,
        default=0,
        help="also keep a checkpoint every N epochs (0: only the best and the resume state)",
    )
    group.add_argument(
        "--holdout_fraction",
        type=float,
        default=0.1,
        help="fraction of the train split held out per source for validation: picks the best "
        "epoch and the decision threshold; the val split is only tested on (0.1)",
    )
    group.add_argument(
        "--cache_views",
        type=int,
        help="with --fix_backbone: augmented views cached per training image, one drawn per "
        "epoch; the backbone runs N+1 times over the train split, once (default 4 when blur, "
        "JPEG, random crops or flips are on; 0: centre views only, no augmentation)",
    )
    group.add_argument(
        "--no_cache",
        action="store_true",
        help="with --fix_backbone: run the backbone on every batch instead of caching features",
    )
    group.add_argument(
        "--extract_features_only",
        action="store_true",
        help="with --fix_backbone: fill the feature caches (train, holdout, test) and stop; "
        "under torchrun each rank extracts its share of the images",
    )
    group.add_argument(
        "--restart",
        action="store_true",
        help="ignore a resume state left by an earlier run of the same --name",
    )
    original = parser.add_argument_group(
        "UniversalFakeDetect flags kept for its scripts (the behaviour they ask for is the default)"
    )
    original.add_argument(
        "--continue_train",
        action="store_true",
        help="resume the run of this --name: always done unless --restart",
    )
    original.add_argument(
        "--data_aug",
        action="store_true",
        help="blur/JPEG augmentation: on by default, set by --blur_prob/--jpg_prob (0: off)",
    )
    original.add_argument(
        "--optim",
        choices=("adam",),
        default="adam",
        help="the optimiser: AdamW (UniversalFakeDetect's sgd is not offered)",
    )


def apply_defaults(
    args: argparse.Namespace, is_demo: bool, skip: tuple[str, ...] = ()
) -> list[str]:
    """Fill unset options from the preset, then the general defaults (except ``skip``);
    returns what the preset set (for printing)."""
    preset_name = args.preset or ("demo" if is_demo else None)
    preset = PRESETS.get(preset_name, {}) if preset_name else {}
    applied = []
    for key, general in GENERAL_DEFAULTS.items():
        if getattr(args, key, None) is None and key not in skip:
            value = preset.get(key, general)
            setattr(args, key, value)
            if key in preset:
                applied.append(f"--{key} {value}")
    if args.preset is None:
        args.preset = preset_name
    return applied


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
