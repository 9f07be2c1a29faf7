"""The active-learning command-line flags (the original project's names), bound to
:class:`~active_learning.config.ALConfig` fields of the same names.

Every flag defaults to ``None`` (not given), so an entry point can tell what the user set from
what a preset or a default fills in. ``--niter`` and ``--earlystop_epoch`` belong to the entry
point's own training flags, which active learning shares (epochs after each query; patience).
"""

from __future__ import annotations

import argparse
from typing import Any

from active_learning.acquisition import resolve_name
from active_learning.config import EARLYSTOP_METRICS, PATIENCE_UNITS, ALConfig

GROUP_TITLE = "active learning"


def _acq_func_type(text: str) -> str:
    try:
        return resolve_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _default(name: str) -> Any:
    """The default of an :class:`ALConfig` field, for help texts."""
    return getattr(ALConfig, name)


ACQ_HELP = (
    "acquisition function, by name or original number: 1 uniform, 2 max_entropy, 3 bald, "
    "4 var_ratios, 5 mean_std, 0 all five in turn (with one plot); 6-9 loss-weighted max "
    "entropy / bald / var ratios / mean std read the TRUE label of every pool image "
    "(simulation only; --label_free uses the predicted label). By name only: power_NAME, "
    "softmax_NAME, softrank_NAME sample the query from any of the nine scores (stochastic "
    "batch acquisition, Kirsch et al. 2023; --acq_temperature), badge picks diverse "
    "uncertain images by k-means++ on the head's gradient embeddings (Ash et al. 2020). "
    "Default " + ALConfig.acq_func
)


def _switches() -> list[tuple[str, str]]:
    return [
        ("--balance_acquisition", "half of every query from each class, each half its class's "
         "top scores; reads the TRUE labels of pool images (simulation only) unless "
         "--label_free, which balances by predicted class"),
        ("--label_free", "never read pool labels: loss-weighted scores and "
         "--balance_acquisition use the predicted label instead (works on an unlabelled pool)"),
        ("--use_weighted_loss", "weight new samples' loss by w^3 of their query score"),
    ]  # fmt: skip


def _numbers() -> list[tuple[str, type, str]]:
    d = _default
    return [
        ("--weighted_loss_decay", float,
         f"per-epoch decay of the loss weights, floor 1 ({d('weighted_loss_decay')})"),
        ("--num_samples_per_class", int,
         f"initial labelled images per class ({d('num_samples_per_class')})"),
        ("--query", int, f"images labelled per iteration ({d('query')})"),
        ("--al_iter", int, f"active-learning iterations ({d('al_iter')})"),
        ("--al_niter_warmup", int, f"epochs on the initial set ({d('al_niter_warmup')})"),
        ("--dropout_iter", int, f"MC-dropout passes T ({d('dropout_iter')})"),
        ("--subsample_size", int, "score a random subset of the unlabelled pool this big; "
         f"0 = all of it ({d('subsample_size')})"),
        ("--acq_temperature", float, "temperature of the stochastic acquisitions (power_NAME: "
         "P ~ score^(1/t), softmax_NAME: exp(score/t), softrank_NAME: rank^(-1/t)); "
         f"({d('acq_temperature')})"),
        ("--badge_candidates", int, "BADGE seeds k-means++ over this many random unlabelled "
         f"candidates ({d('badge_candidates')})"),
    ]  # fmt: skip


def add_active_learning_options(parser: argparse.ArgumentParser) -> set[str]:
    """Add the active-learning flags to ``parser``; returns their ``dest`` names (the flags
    only active learning reads)."""
    group = parser.add_argument_group(
        GROUP_TITLE,
        "Bayesian active learning with MC dropout. Options that read the true labels of pool "
        "images work only in simulation, where the whole pool is labelled.",
    )
    actions = [
        group.add_argument(
            "--use_active_learning",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="train by active learning",
        ),
        group.add_argument("--acq_func", type=_acq_func_type, metavar="NAME|0-9", help=ACQ_HELP),
    ]
    for flag, text in _switches():
        actions.append(
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
        )
    for flag, kind, text in _numbers():
        actions.append(group.add_argument(flag, type=kind, help=text))
    actions.append(
        group.add_argument(
            "--al_earlystop_metric",
            choices=EARLYSTOP_METRICS,
            help=f"validation metric for early stopping ({_default('al_earlystop_metric')})",
        )
    )
    actions.append(
        group.add_argument(
            "--al_patience_unit",
            choices=PATIENCE_UNITS,
            help="what --earlystop_epoch counts under active learning: iteration (one "
            "validation per iteration; an LR drop carries to later rounds; the run stops when "
            "the LR falls below --min_lr; as CS545) or epoch (each round early-stops on its own "
            f"epochs and ends in its best epoch) ({_default('al_patience_unit')})",
        )
    )
    return {action.dest for action in actions} - {"use_active_learning"}
