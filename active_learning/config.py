"""The active-learning settings: the :class:`ALConfig` dataclass and its validation.

Its command-line flags are in :mod:`active_learning.flags`; the paper's presets live with the
detector's in the one preset table of the entry point that runs the loop. This module imports
neither torch nor the toolkit's other packages (but rfd_common), so ``--help`` stays fast.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from active_learning.acquisition import ALL, PLAIN, REGISTRY, resolve_name
from rfd_common.errors import UserError
from rfd_common.fingerprints import RESUMABLE

EARLYSTOP_METRICS = ("acc", "ap")
PATIENCE_UNITS = ("iteration", "epoch")  # what early-stopping patience counts


class ConfigError(UserError):
    """An impossible active-learning option; the message names the flag."""


@dataclass
class ALConfig:
    """Everything the loop needs besides the learner and the labels (DESIGN section 6)."""

    # RESUMABLE: may differ between a run and its resumption (rfd_common.fingerprints)
    use_active_learning: bool = field(default=False, metadata=RESUMABLE)
    acq_func: str = "max_entropy"  # a registry name, or "all" (--acq_func 0)
    balance_acquisition: bool = False
    label_free: bool = False
    use_weighted_loss: bool = False
    weighted_loss_decay: float = 0.99
    num_samples_per_class: int = 100
    query: int = 100
    al_iter: int = field(default=10, metadata=RESUMABLE)  # more iterations: resume and go on
    al_niter_warmup: int = 10
    niter: int = 5
    dropout_iter: int = 10
    subsample_size: int = 10000  # the original's default; 0 = the whole unlabelled pool
    al_earlystop_metric: str = "acc"
    earlystop_epoch: int = 5  # patience in epochs; 0 = no early stopping
    seed: int = 0
    preset: str | None = field(default=None, metadata=RESUMABLE)
    min_lr: float = 1e-6  # a round stops when an LR drop takes the LR below this
    earlystop_delta: float = 0.001  # an epoch improves only if it beats the best by this
    al_patience_unit: str = "iteration"  # patience in AL iterations (CS545) or round epochs
    acq_temperature: float = 1.0  # stochastic acquisition (power_/softmax_/softrank_ names)
    badge_candidates: int = 10000  # BADGE's k-means++ runs over this many random candidates

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
            (self.acq_temperature > 0, "--acq_temperature", "must be positive"),
            (self.badge_candidates >= 1, "--badge_candidates", "must be at least 1"),
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
