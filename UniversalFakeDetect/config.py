"""Typed, frozen settings of a detector run; the command line is parsed into them once
(:mod:`UniversalFakeDetect.options`) and nothing below the CLI modules sees argparse.

Every field's default here is the general default; presets (:mod:`UniversalFakeDetect.presets`)
and explicit flags override it. A field marked ``RESUMABLE`` may differ between a run and its
resumption (more epochs, other folders); every other field is part of the resume key, which is
therefore derived from these classes, not from a list kept by hand.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from active_learning.config import ALConfig
from rfd_common.errors import UserError
from rfd_common.fingerprints import RESUMABLE, must_match_on_resume
from UniversalFakeDetect.data.augment import AugmentConfig
from UniversalFakeDetect.models.registry import WEIGHT_CHOICES, resolve_arch

DATA_ROOT_ENV = "RFD_DATA_ROOT"  # the dataset used when --data_root is not given
EARLYSTOP_METRICS = ("acc", "ap")


@dataclass(frozen=True)
class DataConfig:
    """Where the images are and how they are read."""

    data_root: Path | None = None  # None: $RFD_DATA_ROOT, else the embedded demo
    data_mode: str = "dip"
    wang2020_data_path: Path | None = None
    load_size: int | None = None  # None: the dataset's image size
    crop_size: int | None = None  # None: 7/8 of load_size
    flip: bool = True
    num_threads: int = field(default=0, metadata=RESUMABLE)
    strict: bool = field(default=False, metadata=RESUMABLE)

    def validate(self) -> DataConfig:
        if self.data_mode == "wang2020" and not self.wang2020_data_path:
            raise UserError("--data_mode wang2020 needs --wang2020_data_path")
        for flag, size in (("--loadSize", self.load_size), ("--cropSize", self.crop_size)):
            if size is not None and size < 1:
                raise UserError(f"{flag} {size}: must be at least 1")
        if self.num_threads < 0:
            raise UserError(f"--num_threads {self.num_threads}: must be 0 or more")
        return self


@dataclass(frozen=True)
class ModelConfig:
    """The detector: backbone, its weights, frozen or not, dropout before the head."""

    arch: str = "CLIP:RN50"
    weights: str = "pretrained"
    fix_backbone: bool = False
    dropout: float = 0.5

    def validate(self) -> ModelConfig:
        resolve_arch(self.arch)
        if self.weights not in WEIGHT_CHOICES:
            raise UserError(f"--weights {self.weights}: expected one of {WEIGHT_CHOICES}")
        if not 0 <= self.dropout < 1:
            raise UserError(f"--dropout {self.dropout}: must be in [0, 1)")
        return self


@dataclass(frozen=True)
class OptimConfig:
    """How the detector is trained: epochs, optimiser, early stopping, held-out part."""

    niter: int = field(default=100, metadata=RESUMABLE)
    lr: float = 1e-4
    beta1: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 256
    earlystop_epoch: int = 5
    earlystop_metric: str = "acc"
    min_lr: float = 1e-6
    save_epoch_freq: int = field(default=0, metadata=RESUMABLE)
    holdout_fraction: float = 0.1
    sync_bn: bool = False  # under torchrun on GPUs: SyncBatchNorm

    def validate(self) -> OptimConfig:
        checks = [
            (self.niter >= 1, "--niter", "must be at least 1"),
            (self.lr > 0, "--lr", "must be positive"),
            (0 <= self.beta1 < 1, "--beta1", "must be in [0, 1)"),
            (self.weight_decay >= 0, "--weight_decay", "must be 0 or more"),
            (self.batch_size >= 1, "--batch_size", "must be at least 1"),
            (self.earlystop_epoch >= 1, "--earlystop_epoch", "must be at least 1"),
            (self.earlystop_metric in EARLYSTOP_METRICS, "--earlystop_metric", "acc or ap"),
            (self.min_lr >= 0, "--min_lr", "must be 0 or more"),
            (self.save_epoch_freq >= 0, "--save_epoch_freq", "must be 0 or more"),
            (
                0 < self.holdout_fraction < 1,
                "--holdout_fraction",
                "must be in (0, 1): the held-out images pick the best epoch and the threshold",
            ),
        ]
        _raise_first(self, checks)
        return self


@dataclass(frozen=True)
class CacheConfig:
    """Backbone features with a frozen backbone: cached (with augmented views) or not."""

    cache_views: int | None = None  # None: resolved from the augmentation (see pipeline)
    no_cache: bool = False
    extract_features_only: bool = field(default=False, metadata=RESUMABLE)

    def validate(self) -> CacheConfig:
        if self.cache_views is not None and self.cache_views < 0:
            raise UserError(f"--cache_views {self.cache_views}: must be 0 or more")
        return self


@dataclass(frozen=True)
class RunConfig:
    """Names, folders, device, seed: where a run writes and what it is called."""

    name: str = field(default="normal", metadata=RESUMABLE)
    seed: int = 0
    checkpoints_dir: Path = field(default=Path("checkpoints"), metadata=RESUMABLE)
    result_folder: Path = field(default=Path("results"), metadata=RESUMABLE)
    gpu_ids: tuple[int, ...] | None = field(default=None, metadata=RESUMABLE)
    restart: bool = field(default=False, metadata=RESUMABLE)
    preset: str | None = field(default=None, metadata=RESUMABLE)
    dist_timeout: float = field(default=30.0, metadata=RESUMABLE)  # minutes, under torchrun


@dataclass(frozen=True)
class TrainSettings:
    """Everything a training run needs, parsed once; ``explicit`` names the options the user
    gave (messages and conflicts need to tell them from defaults)."""

    data: DataConfig
    augment: AugmentConfig
    model: ModelConfig
    optim: OptimConfig
    cache: CacheConfig
    run: RunConfig
    active_learning: ALConfig | None = None
    explicit: frozenset[str] = frozenset()
    applied: tuple[str, ...] = ()  # what a preset filled in, for printing
    is_demo: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Every setting, JSON-able (paths as text), for checkpoints and results."""
        out = {}
        for part in ("data", "augment", "model", "optim", "cache", "run"):
            out[part] = _jsonable(dataclasses.asdict(getattr(self, part)))
        if self.active_learning is not None:
            out["active_learning"] = self.active_learning.to_dict()
        return out

    def resume_key(self) -> dict[str, Any]:
        """The settings a resumed run must share with the run that left its state: every
        field not marked ``RESUMABLE``, by name (the names are unique across the parts)."""
        key: dict[str, Any] = {}
        for part in ("data", "augment", "model", "optim", "cache", "run"):
            key |= _jsonable(must_match_on_resume(getattr(self, part)))
        return key


def _raise_first(config: Any, checks: list[tuple[bool, str, str]]) -> None:
    """Raise a :class:`UserError` for the first failed check: ``--flag value: problem``."""
    for ok, flag, problem in checks:
        if not ok:
            value = getattr(config, flag.lstrip("-"), None)
            raise UserError(f"{flag} {value}: {problem}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
