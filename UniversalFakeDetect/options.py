"""Command-line flags of the detector scripts. The original project's flag names keep working.

Training flags default to ``None`` (not given): :mod:`UniversalFakeDetect.train_settings` fills
them from the preset table and the configs' defaults, so a flag given always wins and the
defaults are written once, in :mod:`UniversalFakeDetect.config`. ``test`` and ``detect`` add only
the flags they use.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rfd_common.errors import UserError
from UniversalFakeDetect.config import DataConfig, ModelConfig, OptimConfig, RunConfig
from UniversalFakeDetect.models.registry import ARCHS, WEIGHT_CHOICES
from UniversalFakeDetect.presets import PRESETS


def csv_floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected numbers like 0.0,3.0, got {text!r}") from exc


def csv_ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected integers like 30,100, got {text!r}") from exc


def csv_words(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def gpu_ids(text: str) -> tuple[int, ...]:
    """``0`` or ``0,1`` -> the ids; ``-1`` -> () (the CPU)."""
    ids = csv_ints(text)
    return () if list(ids) == [-1] else ids


def default_checkpoints_dir() -> Path:
    """``$RFD_CHECKPOINTS_DIR``, else ``./checkpoints``."""
    return Path(os.environ.get("RFD_CHECKPOINTS_DIR", RunConfig.checkpoints_dir))


def default_results_dir() -> Path:
    """``$RFD_RESULTS_DIR``, else ``./results``."""
    return Path(os.environ.get("RFD_RESULTS_DIR", RunConfig.result_folder))


def add_bare_head_options(parser: argparse.ArgumentParser) -> None:
    """``--arch``/``--weights`` for a published bare linear head or an original checkpoint."""
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


def add_dataset_options(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Where the images are: ``--data_root``, ``--data_mode``, ``--wang2020_data_path``."""
    group = parser.add_argument_group("data")
    group.add_argument(
        "--data_root",
        "--dataroot",
        dest="data_root",
        type=Path,
        help="dataset folder holding manifest.csv (default: $RFD_DATA_ROOT, else the embedded "
        "demo dataset, generated into the cache on first use)",
    )
    group.add_argument(
        "--data_mode",
        choices=("dip", "wang2020"),
        help="dip: a manifest dataset (default); wang2020: 0_real/1_fake generator folders "
        "under --wang2020_data_path/{train,val}",
    )
    group.add_argument(
        "--wang2020_data_path", type=Path, help="root of 0_real/1_fake generator folders"
    )
    return group


def add_view_options(group: argparse._ArgumentGroup, crop_help: str) -> None:
    """``--loadSize``/``--cropSize``: the resize and the crop."""
    group.add_argument(
        "--loadSize",
        "--load_size",
        dest="load_size",
        type=int,
        help="resize the shorter side to this first, keeping the aspect ratio (default: the "
        "dataset's image size)",
    )
    group.add_argument("--cropSize", "--crop_size", dest="crop_size", type=int, help=crop_help)


def add_loading_options(group: argparse._ArgumentGroup) -> None:
    """``--num_threads`` and ``--strict``."""
    group.add_argument("--num_threads", type=int, help="data-loading worker processes (default 0)")
    group.add_argument(
        "--strict",
        action="store_true",
        default=None,
        help="stop at the first unreadable image (default: skip and count them)",
    )


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """The training data flags."""
    group = add_dataset_options(parser)
    add_view_options(
        group, "then crop to this (random in training, centred in testing; default 7/8 of it)"
    )
    group.add_argument(
        "--no_flip", action="store_true", default=None, help="no random horizontal flips"
    )
    add_loading_options(group)


def add_augment_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("augmentation (training)")
    group.add_argument("--blur_prob", type=float, help="probability of Gaussian blur (0.5)")
    group.add_argument("--blur_sig", type=csv_floats, help="blur sigma range (0.0,3.0)")
    group.add_argument("--jpg_prob", type=float, help="probability of JPEG re-compression (0.5)")
    group.add_argument("--jpg_method", type=csv_words, help="JPEG encoders (cv2,pil)")
    group.add_argument("--jpg_qual", type=csv_ints, help="JPEG quality range (30,100)")


def add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--arch",
        help=f"backbone (default {ModelConfig.arch}; {PRESETS['demo'].detector['arch']} on the "
        f"demo dataset); one of: {', '.join(ARCHS)}",
    )
    group.add_argument(
        "--weights",
        choices=WEIGHT_CHOICES,
        help="pretrained (ImageNet / OpenAI CLIP) or none (random initialisation). Default: "
        "pretrained; none on the embedded demo dataset (nothing to download)",
    )
    group.add_argument(
        "--fix_backbone",
        action="store_true",
        default=None,
        help="freeze the backbone; train the head only",
    )
    group.add_argument(
        "--dropout", type=float, help=f"dropout before the head ({ModelConfig.dropout})"
    )


def add_output_options(group: argparse._ArgumentGroup, name_help: str) -> None:
    """``--name``, ``--seed``, ``--batch_size``, the output folders and ``--gpu_ids``."""
    group.add_argument("--name", help=name_help)
    group.add_argument("--seed", type=int, help="random seed (0)")
    group.add_argument("--batch_size", type=int, help="batch size")
    group.add_argument(
        "--checkpoints_dir",
        type=Path,
        help="checkpoints go to CHECKPOINTS_DIR/NAME/ (./checkpoints or $RFD_CHECKPOINTS_DIR)",
    )
    group.add_argument(
        "--result_folder",
        "--results_dir",
        dest="result_folder",
        type=Path,
        help="results go to RESULT_FOLDER/NAME/ (./results or $RFD_RESULTS_DIR)",
    )
    group.add_argument(
        "--gpu_ids",
        type=gpu_ids,
        help="GPU id, e.g. 0 (only the first of a list is used); -1 for the CPU "
        "(default: GPU 0 if available)",
    )


def add_run_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("run")
    add_output_options(
        group,
        "experiment name (demo_normal or demo_active_learning on the demo dataset, else "
        "normal or active_learning)",
    )
    group.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="a bundle of settings, flags given win: "
        + "; ".join(f"{name}: {p.description}" for name, p in PRESETS.items())
        + ". demo is used automatically on the demo dataset",
    )
    group.add_argument(
        "--dist_timeout",
        type=float,
        help="under torchrun: minutes a rank waits for the others at a collective before the "
        "job fails (30); a rank that dies ends the job at once",
    )


def add_training_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training")
    defaults = OptimConfig()
    group.add_argument(
        "--niter",
        type=int,
        help=f"maximum epochs ({defaults.niter}; 12 on the demo); with --use_active_learning: "
        "epochs after each query (5; 4 on the demo)",
    )
    group.add_argument("--lr", type=float, help="initial learning rate (1e-4; 1e-3 on the demo)")
    group.add_argument("--beta1", type=float, help=f"Adam beta1 ({defaults.beta1})")
    group.add_argument("--weight_decay", type=float, help="AdamW weight decay (0)")
    group.add_argument(
        "--earlystop_epoch",
        type=int,
        help="patience: epochs without a validation gain before the LR drops 10x (5; 2 on the "
        "demo); under active learning, iterations with --al_patience_unit iteration (0: off)",
    )
    group.add_argument(
        "--earlystop_metric",
        choices=("acc", "ap"),
        help="validation metric for early stopping and the best epoch (acc, as the original)",
    )
    group.add_argument(
        "--min_lr", type=float, help=f"stop when the LR falls below this ({defaults.min_lr})"
    )
    group.add_argument(
        "--sync_bn",
        action="store_const",
        const=True,
        help="under torchrun on GPUs: BatchNorm statistics over the whole global batch "
        "(SyncBatchNorm) instead of each rank's share; backbones with BatchNorm (ResNets, "
        "VGG has none, ViTs and CLIP ViT use LayerNorm) then train as in one process",
    )
    group.add_argument(
        "--save_epoch_freq",
        type=int,
        help="also keep a checkpoint every N epochs (0: only the best and the resume state)",
    )
    group.add_argument(
        "--holdout_fraction",
        type=float,
        help="fraction of the train split held out per source for validation: picks the best "
        f"epoch and the decision threshold; the val split is only tested on "
        f"({defaults.holdout_fraction})",
    )
    add_cache_options(group)
    group.add_argument(
        "--restart",
        action="store_true",
        default=None,
        help="ignore a resume state left by an earlier run of the same --name",
    )
    add_original_training_flags(parser)


def add_cache_options(group: argparse._ArgumentGroup) -> None:
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
        default=None,
        help="with --fix_backbone: run the backbone on every batch instead of caching features",
    )
    group.add_argument(
        "--extract_features_only",
        action="store_true",
        default=None,
        help="with --fix_backbone: fill the feature caches (train, holdout, test) and stop; "
        "under torchrun each rank extracts its share of the images",
    )


def add_original_training_flags(parser: argparse.ArgumentParser) -> None:
    """UniversalFakeDetect's flags whose behaviour is the default: accepted, they change
    nothing (a resumed run, blur/JPEG augmentation, the Adam family)."""
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


def choose_device(ids: tuple[int, ...] | None) -> str:
    """``cuda:N`` for the first requested GPU, else ``cpu``; ``None`` = GPU 0 if available."""
    import torch

    if ids is None:
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if not ids:
        return "cpu"
    if not torch.cuda.is_available():
        raise UserError(f"--gpu_ids {ids[0]}: no GPU available here; use --gpu_ids -1")
    return f"cuda:{ids[0]}"


def data_config(values: dict) -> DataConfig:
    """A :class:`DataConfig` from parsed flag values (``no_flip`` inverted to ``flip``)."""
    fields = {k: v for k, v in values.items() if k in DataConfig.__dataclass_fields__}
    if values.get("no_flip") is not None:
        fields["flip"] = not values["no_flip"]
    return DataConfig(**fields).validate()
