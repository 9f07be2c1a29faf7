"""The training command line, parsed into :class:`~UniversalFakeDetect.config.TrainSettings`.

Layers, lowest first: the configs' defaults (:mod:`UniversalFakeDetect.config`,
:class:`~active_learning.config.ALConfig`), the training defaults and the named preset (or the
demo preset implied by the embedded demo dataset) from :mod:`UniversalFakeDetect.presets`, then
every flag given. Under active learning ``--niter`` and ``--earlystop_epoch`` are the
active-learning round's (epochs after each query; patience).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from active_learning.config import ALConfig
from active_learning.flags import add_active_learning_options
from rfd_common.errors import UserError
from UniversalFakeDetect import options
from UniversalFakeDetect.config import (
    DATA_ROOT_ENV,
    CacheConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    TrainSettings,
)
from UniversalFakeDetect.data.augment import AugmentConfig
from UniversalFakeDetect.presets import PRESETS, TRAINING_DEFAULTS, preset_values

SHARED_WITH_ACTIVE_LEARNING = ("niter", "earlystop_epoch")


def build_parser(description: str | None = None) -> tuple[argparse.ArgumentParser, set[str]]:
    """The training parser and the destinations only active learning reads."""
    parser = argparse.ArgumentParser(
        prog="python -m UniversalFakeDetect.train",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    options.add_data_options(parser)
    options.add_augment_options(parser)
    options.add_model_options(parser)
    options.add_run_options(parser)
    options.add_training_options(parser)
    return parser, add_active_learning_options(parser)


def uses_demo(data_root: Path | None, data_mode: str | None) -> bool:
    """True when no dataset was named: the embedded demo dataset will be used."""
    return (data_mode or "dip") == "dip" and data_root is None and not os.environ.get(DATA_ROOT_ENV)


def _pick(cls: type, values: dict[str, Any]) -> Any:
    """An instance of dataclass ``cls`` from the ``values`` named like its fields."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})


def layered_values(
    given: dict[str, Any], active_learning: bool, preset: str | None
) -> tuple[dict[str, Any], list[str]]:
    """All setting values (defaults < preset < given) and what the preset filled in."""
    values: dict[str, Any] = dict(TRAINING_DEFAULTS)
    if active_learning:  # the round's epochs and patience, not normal training's
        values.update({k: getattr(ALConfig, k) for k in SHARED_WITH_ACTIVE_LEARNING})
    from_preset = preset_values(preset, active_learning)
    values.update(from_preset)
    applied = [f"--{k} {v}" for k, v in from_preset.items() if k not in given]
    values.update(given)
    return values, applied


def settings_from_args(args: argparse.Namespace, al_dests: set[str]) -> TrainSettings:
    """Resolve parsed flags (``None`` = not given) into validated, frozen settings."""
    given = {k: v for k, v in vars(args).items() if v is not None}
    given.pop("continue_train", None), given.pop("data_aug", None), given.pop("optim", None)
    preset_name = given.get("preset")
    implied = PRESETS[preset_name].implies_active_learning if preset_name else False
    use_al = bool(given.get("use_active_learning", implied))
    stray = sorted((set(given) & al_dests) - {"use_active_learning"})
    if stray and not use_al:
        flags = ", ".join(f"--{dest}" for dest in stray)
        raise UserError(
            f"{flags}: active-learning options, but this run trains normally; add "
            "--use_active_learning (or run train_active_learning.sh)"
        )
    is_demo = uses_demo(given.get("data_root"), given.get("data_mode"))
    preset = preset_name or ("demo" if is_demo else None)
    values, applied = layered_values(given, use_al, preset)
    al = _pick(ALConfig, {**values, "use_active_learning": True, "preset": preset})
    al = al.validate() if use_al else None
    if al is not None:  # normal-training checks: an AL patience of 0 (off) is fine there
        values["earlystop_epoch"] = al.earlystop_epoch or 1
    kind = "active_learning" if use_al else "normal"
    run_values = {
        "name": f"demo_{kind}" if is_demo else kind,
        "checkpoints_dir": options.default_checkpoints_dir(),
        "result_folder": options.default_results_dir(),
        **values,
        "preset": preset,
    }
    return TrainSettings(
        data=options.data_config(values),
        augment=augment_config(values),
        model=_pick(ModelConfig, values).validate(),
        optim=_pick(OptimConfig, values).validate(),
        cache=_pick(CacheConfig, values).validate(),
        run=_pick(RunConfig, run_values),
        active_learning=al,
        explicit=frozenset(given),
        applied=tuple(applied),
        is_demo=is_demo,
    )


def augment_config(values: dict[str, Any]) -> AugmentConfig:
    """The augmentation settings, checked (one message naming the flag)."""
    checks = [
        ("blur_prob", lambda v: 0 <= v <= 1, "must be in [0, 1]"),
        ("jpg_prob", lambda v: 0 <= v <= 1, "must be in [0, 1]"),
        (
            "blur_sig",
            lambda v: len(v) in (1, 2) and 0 <= v[0] <= v[-1],
            "must be one sigma or a range LOW,HIGH with 0 <= LOW <= HIGH",
        ),
        (
            "jpg_qual",
            lambda v: len(v) in (1, 2) and 1 <= v[0] <= v[-1] <= 100,
            "must be one quality or a range LOW,HIGH within 1..100",
        ),
    ]
    for name, ok, problem in checks:
        if name in values and not ok(values[name]):
            raise UserError(f"--{name} {values[name]}: {problem}")
    try:
        return _pick(AugmentConfig, values)
    except ValueError as exc:
        raise UserError(f"--jpg_method {','.join(values['jpg_method'])}: {exc}") from exc


def parse_train_args(argv: Sequence[str] | None, description: str | None) -> TrainSettings:
    """Parse the training command line into settings (``--help`` exits here, fast)."""
    parser, al_dests = build_parser(description)
    return settings_from_args(parser.parse_args(argv), al_dests)
