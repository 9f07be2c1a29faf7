"""Active-learning options: the :class:`ALConfig` dataclass, the paper's presets, the flags.

The flag names are the original project's. A training entry point adds them with
:func:`add_active_learning_options` and reads them back with :func:`parse_with_presets`
(or :func:`explicit_dests` + :func:`apply_preset` + :func:`config_from_namespace`): a
``--preset`` fills in the paper's hyperparameters, and any flag given on the command line wins
over the preset. This module imports neither torch nor the other packages, so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from active_learning.acquisition import ALL, PLAIN, REGISTRY, resolve_name

EARLYSTOP_METRICS = ("acc", "ap")
PATIENCE_UNITS = ("iteration", "epoch")  # what early-stopping patience counts


class ConfigError(ValueError):
    """An impossible active-learning option; the message names the flag."""


@dataclass
class ALConfig:
    """Everything the loop needs besides the learner and the labels (DESIGN section 6)."""

    use_active_learning: bool = False
    acq_func: str = "max_entropy"  # a registry name, or "all" (--acq_func 0)
    balance_acquisition: bool = False
    label_free: bool = False
    use_weighted_loss: bool = False
    weighted_loss_decay: float = 0.99
    num_samples_per_class: int = 100
    query: int = 100
    al_iter: int = 10
    al_niter_warmup: int = 10
    niter: int = 5
    dropout_iter: int = 10
    subsample_size: int = 10000  # the original's default; 0 = the whole unlabelled pool
    al_earlystop_metric: str = "acc"
    earlystop_epoch: int = 5  # patience in epochs; 0 = no early stopping
    seed: int = 0
    preset: str | None = None
    min_lr: float = 1e-6  # a round stops when an LR drop takes the LR below this
    earlystop_delta: float = 0.001  # an epoch improves only if it beats the best by this
    al_patience_unit: str = "iteration"  # patience in AL iterations (CS545) or round epochs

    def __post_init__(self) -> None:
        try:
            self.acq_func = resolve_name(self.acq_func)
        except ValueError as exc:
            raise ConfigError(f"--acq_func: {exc}") from exc

    def validate(self) -> ALConfig:
        """Raise :class:`ConfigError` naming the first impossible value; return self."""
        checks = [
            (self.num_samples_per_class >= 1, "--num_samples_per_class", "must be at least 1"),
            (self.query >= 1, "--query", "must be at least 1"),
            (self.al_iter >= 0, "--al_iter", "must be 0 or more"),
            (self.al_niter_warmup >= 0, "--al_niter_warmup", "must be 0 or more"),
            (self.niter >= 1, "--niter", "must be at least 1"),
            (self.dropout_iter >= 1, "--dropout_iter", "must be at least 1"),
            (self.subsample_size >= 0, "--subsample_size", "must be 0 (whole pool) or more"),
            (0 < self.weighted_loss_decay <= 1, "--weighted_loss_decay", "must be in (0, 1]"),
            (self.al_earlystop_metric in EARLYSTOP_METRICS, "--al_earlystop_metric", "acc|ap"),
            (self.earlystop_epoch >= 0, "--earlystop_epoch", "must be 0 (off) or more"),
            (self.al_patience_unit in PATIENCE_UNITS, "--al_patience_unit", "iteration|epoch"),
            (self.min_lr > 0, "min_lr", "must be positive"),
            (self.preset is None or self.preset in PRESETS, "--preset", f"one of {PRESETS}"),
        ]
        for ok, flag, problem in checks:
            if not ok:
                value = getattr(self, flag.lstrip("-"), None)
                raise ConfigError(f"{flag} {value}: {problem}")
        return self

    @property
    def strategies(self) -> tuple[str, ...]:
        """The strategies to run: one, or the five plain ones for ``all``."""
        return PLAIN if self.acq_func == ALL else (self.acq_func,)

    @property
    def true_label_uses(self) -> list[str]:
        """What in this configuration reads the true labels of pool images (simulation only)."""
        if self.label_free:
            return []
        uses = []
        if any(REGISTRY[s].needs_labels for s in self.strategies):
            uses.append(f"{self.acq_func} weights the score by the loss against the true label")
        if self.balance_acquisition:
            uses.append("--balance_acquisition splits the query by true class")
        return uses

    @property
    def simulation_only(self) -> bool:
        """True when the run reads true labels of the pool: it cannot run on unlabelled data."""
        return bool(self.true_label_uses)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ALConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


# The paper's hyperparameters (DESIGN section 6). "detector" entries are applied by
# apply_preset to the entry point's own flags when it has them (the paper: CLIP RN50 frozen,
# AdamW/Adam lr 1e-4, batch 256; Table 1's runs used the same detector settings).
PAPER_DETECTOR = {"arch": "CLIP:RN50", "fix_backbone": True, "lr": 1e-4, "batch_size": 256}
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "table1": {
        "al": {
            "use_active_learning": True,
            "num_samples_per_class": 5000,
            "query": 2500,
            "al_iter": 20,
            "al_niter_warmup": 30,
            "niter": 30,
            "dropout_iter": 10,
            "weighted_loss_decay": 0.99,
        },
        "detector": PAPER_DETECTOR,
    },
    "bw_lms_t": {
        "al": {
            "use_active_learning": True,
            "num_samples_per_class": 1000,
            "query": 500,
            "al_iter": 20,
            "al_niter_warmup": 60,
            "niter": 5,
            "dropout_iter": 10,
            "weighted_loss_decay": 0.75,
            "balance_acquisition": True,
            "use_weighted_loss": True,
            "acq_func": "loss_weighted_mean_std",
            "al_earlystop_metric": "ap",
            "earlystop_epoch": 10,
        },
        "detector": PAPER_DETECTOR,
    },
}


def _acq_func_type(text: str) -> str:
    try:
        return resolve_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


_ACQ_HELP = (
    "acquisition function, by name or original number: 1 uniform, 2 max_entropy, 3 bald, "
    "4 var_ratios, 5 mean_std, 0 all five in turn (with one plot); 6-9 loss-weighted max "
    "entropy / bald / var ratios / mean std read the TRUE label of every pool image "
    "(simulation only; --label_free uses the predicted label). Default " + ALConfig.acq_func
)


def _d(name: str) -> Any:
    """The default of an :class:`ALConfig` field, for help texts."""
    return getattr(ALConfig, name)


def _flags() -> list[tuple[list[str], dict[str, Any]]]:
    bool_flag = {"action": argparse.BooleanOptionalAction, "default": None}
    return [
        (["--use_active_learning"], {**bool_flag, "help": "train by active learning"}),
        (["--acq_func"], {"type": _acq_func_type, "metavar": "NAME|0-9", "help": _ACQ_HELP}),
        (
            ["--balance_acquisition"],
            {
                **bool_flag,
                "help": "half of every query from each class, each half its class's top "
                "scores; reads the TRUE labels of pool images (simulation only) unless "
                "--label_free, which balances by predicted class",
            },
        ),
        (
            ["--label_free"],
            {
                **bool_flag,
                "help": "never read pool labels: loss-weighted scores and --balance_acquisition "
                "use the predicted label instead (works on an unlabelled pool)",
            },
        ),
        (
            ["--use_weighted_loss"],
            {**bool_flag, "help": "weight new samples' loss by w^3 of their query score"},
        ),
        (
            ["--weighted_loss_decay"],
            {
                "type": float,
                "help": "per-epoch decay of the loss weights, floor 1 "
                f"({_d('weighted_loss_decay')})",
            },
        ),
        (
            ["--num_samples_per_class"],
            {
                "type": int,
                "help": f"initial labelled images per class ({_d('num_samples_per_class')})",
            },
        ),
        (["--query"], {"type": int, "help": f"images labelled per iteration ({_d('query')})"}),
        (["--al_iter"], {"type": int, "help": f"active-learning iterations ({_d('al_iter')})"}),
        (
            ["--al_niter_warmup"],
            {"type": int, "help": f"epochs on the initial set ({_d('al_niter_warmup')})"},
        ),
        (["--niter"], {"type": int, "help": f"epochs after each query ({_d('niter')})"}),
        (["--dropout_iter"], {"type": int, "help": f"MC-dropout passes T ({_d('dropout_iter')})"}),
        (
            ["--subsample_size"],
            {
                "type": int,
                "help": "score a random subset of the unlabelled pool this big; 0 = all of it "
                f"({_d('subsample_size')})",
            },
        ),
        (
            ["--al_earlystop_metric"],
            {
                "choices": EARLYSTOP_METRICS,
                "help": f"validation metric for early stopping ({_d('al_earlystop_metric')})",
            },
        ),
        (
            ["--earlystop_epoch"],
            {
                "type": int,
                "help": f"early-stopping patience in epochs; 0 = off ({_d('earlystop_epoch')})",
            },
        ),
        (
            ["--preset"],
            {
                "choices": tuple(PRESETS),
                "help": "the paper's hyperparameters: table1 (method comparison) or bw_lms_t "
                "(Table 2's best: balanced, weighted loss, loss-weighted mean std); flags given "
                "explicitly win",
            },
        ),
    ]


def add_active_learning_options(parser: argparse.ArgumentParser) -> None:
    """Add the active-learning flags (defaults ``None``: unset, so presets can fill them).

    A flag the parser already has (e.g. the detector's ``--niter``, ``--earlystop_epoch``) is
    kept as it is and shared: under active learning ``--niter`` is the epochs after each query.
    An existing ``--preset`` with choices gets this module's preset names added to them.
    """
    group = parser.add_argument_group(
        "active learning",
        "Bayesian active learning with MC dropout. Options that read the true labels of pool "
        "images work only in simulation, where the whole pool is labelled.",
    )
    for names, kwargs in _flags():
        existing = parser._option_string_actions.get(names[0])
        if existing is None:
            group.add_argument(*names, **kwargs)
        elif names[0] == "--preset" and existing.choices is not None:
            existing.choices = sorted({*existing.choices, *PRESETS})
            existing.help = f"{existing.help or ''}; {kwargs['help']}".lstrip("; ")


def active_learning_only_dests(parser: argparse.ArgumentParser) -> set[str]:
    """The ``dest`` of every flag only active learning reads (those this module added)."""
    for group in parser._action_groups:
        if group.title == "active learning":
            return {action.dest for action in group._group_actions} - {"use_active_learning"}
    return set()


def explicit_dests(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> set[str]:
    """The ``dest`` of every option given explicitly in ``argv`` (whatever its default)."""
    saved = [(action, action.default) for action in parser._actions]
    saved_defaults = dict(parser._defaults)
    try:
        for action in parser._actions:
            action.default = argparse.SUPPRESS
        parser._defaults.clear()
        namespace, _ = parser.parse_known_args(argv)
    finally:
        for action, default in saved:
            action.default = default
        parser._defaults.update(saved_defaults)
    return set(vars(namespace))


def apply_preset(args: argparse.Namespace, explicit: set[str]) -> argparse.Namespace:
    """Fill ``args`` from ``args.preset``, leaving every dest in ``explicit`` as given.

    Detector settings are set only where ``args`` has that attribute.
    """
    name = getattr(args, "preset", None)
    if name not in PRESETS:
        return args  # none, or an entry point's own preset
    preset = PRESETS[name]
    for key, value in preset["al"].items():
        if key not in explicit:
            setattr(args, key, value)
    for key, value in preset["detector"].items():
        if key not in explicit and hasattr(args, key):
            setattr(args, key, value)
    return args


def config_from_namespace(args: argparse.Namespace) -> ALConfig:
    """An :class:`ALConfig` from parsed flags; unset (``None``) ones keep the defaults.

    A preset of this module is applied to the config too (for namespaces that did not go
    through :func:`apply_preset`), below anything set in ``args``; another ``--preset`` value
    (an entry point's own) is ignored here.
    """
    values: dict[str, Any] = {}
    preset = getattr(args, "preset", None)
    if preset in PRESETS:
        values.update(PRESETS[preset]["al"])
    for field in dataclasses.fields(ALConfig):
        value = getattr(args, field.name, None)
        if value is not None:
            values[field.name] = value
    if values.get("preset") not in PRESETS:
        values.pop("preset", None)
    return ALConfig(**values).validate()


def parse_with_presets(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None = None
) -> tuple[argparse.Namespace, ALConfig]:
    """Parse ``argv``, apply ``--preset`` under the explicit flags, build the config."""
    args = parser.parse_args(argv)
    apply_preset(args, explicit_dests(parser, argv))
    return args, config_from_namespace(args)
