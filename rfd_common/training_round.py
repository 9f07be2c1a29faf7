"""One training round: epochs, validation, early stopping with LR drops, the best state.

Normal training is one round; active learning runs one round for its warm-up and one per
iteration. Both go through :func:`train_round`, which talks to a :class:`RoundModel` (train an
epoch, validate, read and set the learning rate, snapshot and restore the trained weights).

The rule is the original's (CS545 ``train.py`` + ``earlystop.py``), re-expressed:

* With early stopping on (``patience`` >= 1) the model is validated after every epoch and
  judged by ``metric``: ``acc`` by default, as the original, or ``ap``.
* :class:`Plateau` is the original's ``EarlyStopping``. The first score of a stage sets its
  reference. A later score is a gain when ``score >= reference + margin``, with margin 0.001 in
  the first stage and 0.002 in every stage after a drop (the original's deltas -0.001 and
  -0.002), so a tie is not a gain; a gain becomes the reference and clears the count.
* After ``patience`` epochs in a row without a gain, the learning rate is divided by 10. If it
  is now below ``min_lr`` the round stops; otherwise a new stage begins with no reference (the
  next score sets it, whatever it is) and the 0.002 margin.
* A drop does not restore the best weights: training goes on from the current ones at the
  lower rate, as in the original. The round keeps its best state anyway (next point), so
  nothing is lost, and the lower rate gets to work from where the higher one stalled.
* The round keeps a snapshot of its best epoch (the highest score; the earliest on ties; in
  any stage) and ends in it, so its validation is the round's result. This differs from the
  original, which rewrote ``best.pth`` at every gain of the current stage (including the first
  epoch after a drop, even a worse one) and trained on with the last weights.
* With early stopping off (``patience`` 0) every epoch is trained. The model is validated
  once, at the end, and is left in its last state.
* Loss weights: ``reweight`` (the weighted loss's decay) is applied to the weights at the start
  of every epoch of the round except the first.
* Resuming: ``on_epoch`` receives the :class:`RoundState` after every finished epoch (the
  learning rate is already dropped by then). A state passed back to :func:`train_round`, with
  the model's own state restored, continues the round exactly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any, Protocol, runtime_checkable

import numpy as np

METRICS = ("acc", "ap")
FIRST_MARGIN = 0.001  # the original's EarlyStopping(delta=-0.001)
AFTER_DROP_MARGIN = 0.002  # the original's EarlyStopping(delta=-0.002) after an LR drop
LR_DROP = 10.0


@runtime_checkable
class RoundModel(Protocol):
    """What a round needs from a model and its trainer."""

    lr: float
    """The optimiser's learning rate; a round divides it by 10 at a plateau."""

    def train_epoch(self, indices: Any, weights: Any, seed: int) -> float:
        """One epoch over items ``indices`` (None: all), the per-sample loss of ``indices[i]``
        times ``weights[i]`` (None: all 1), the order drawn from ``seed``; the mean loss."""

    def validate(self) -> Mapping[str, float]:
        """Metrics on held-out data: at least ``acc`` and ``ap`` (numbers)."""

    def snapshot(self) -> Any:
        """A copy of the weights that training changes (not the optimiser)."""

    def restore(self, snapshot: Any) -> None:
        """Load a :meth:`snapshot` back."""


class Step(Enum):
    """What one score did to a :class:`Plateau`."""

    GAIN = "gain"
    WAIT = "wait"
    DROP = "drop"


@dataclass
class Plateau:
    """The original's early-stopping rule: patience, the margin, the reference's reset."""

    patience: int
    margin: float = FIRST_MARGIN
    margin_after_drop: float = AFTER_DROP_MARGIN
    reference: float | None = None
    waited: int = 0
    drops: int = 0

    def step(self, score: float) -> Step:
        """Judge ``score``; at :attr:`Step.DROP` a new stage begins (no reference)."""
        margin = self.margin if self.drops == 0 else self.margin_after_drop
        if self.reference is None or not score < self.reference + margin:
            self.reference, self.waited = score, 0
            return Step.GAIN
        self.waited += 1
        if self.waited < self.patience:
            return Step.WAIT
        self.reference, self.waited, self.drops = None, 0, self.drops + 1
        return Step.DROP


def drop_lr(model: RoundModel, min_lr: float) -> bool:
    """Divide the model's learning rate by 10; False when it is now below ``min_lr`` (stop)."""
    model.lr = model.lr / LR_DROP
    return not model.lr < min_lr


@dataclass(frozen=True)
class RoundConfig:
    """How long a round trains and when it stops."""

    epochs: int
    patience: int = 5  # epochs without a gain before the LR drop; 0: no early stopping
    metric: str = "acc"
    min_lr: float = 1e-6
    margin: float = FIRST_MARGIN
    margin_after_drop: float = AFTER_DROP_MARGIN

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"early-stopping metric {self.metric!r}: one of {METRICS}")
        if self.epochs < 0 or self.patience < 0:
            raise ValueError(f"epochs {self.epochs}, patience {self.patience}: must be >= 0")


@dataclass
class RoundState:
    """A round after its last finished epoch: enough to continue it."""

    plateau: Plateau
    epoch: int = 0  # epochs finished
    history: list[dict[str, float]] = field(default_factory=list)
    best_score: float | None = None
    best_epoch: int = 0  # 0: none yet
    best_validation: dict[str, float] = field(default_factory=dict)
    best_snapshot: Any = None
    stopped: bool = False  # the learning rate fell below the floor
    validation_seconds: float = 0.0  # time spent in ``validate`` so far (part of the round's)

    @classmethod
    def start(cls, config: RoundConfig) -> RoundState:
        return cls(Plateau(config.patience, config.margin, config.margin_after_drop))

    def to_dict(self) -> dict[str, Any]:
        """Plain values (and the snapshot as it is), for ``torch.save``."""
        values = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "plateau"}
        return {**values, "plateau": asdict(self.plateau)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RoundState:
        return cls(**{**values, "plateau": Plateau(**values["plateau"])})


@dataclass(frozen=True)
class EpochReport:
    """One finished epoch, as ``on_epoch`` sees it."""

    record: dict[str, float]  # epoch, loss, val_acc, val_ap (early stopping on), lr, seconds
    best: bool  # a new best of the round: its snapshot was just taken
    dropped: bool  # the learning rate was divided by 10 after this epoch
    stopped: bool  # ... and fell below the floor: the round ends


@dataclass
class RoundResult:
    """The end of a round; the model is left in the state whose validation this is."""

    validation: dict[str, float]
    epochs: int
    lr_drops: int
    loss: float | None  # mean training loss over the round's epochs; None without any
    seconds: float  # the whole round: training epochs and validation
    stopped: bool
    weights: np.ndarray | None  # the loss weights of the last epoch (after their decay)
    state: RoundState
    validation_seconds: float = 0.0  # the part of ``seconds`` spent validating (this process)

    @property
    def training_seconds(self) -> float:
        """The part of ``seconds`` spent outside validation: the epochs themselves."""
        return max(self.seconds - self.validation_seconds, 0.0)


EpochSeed = Callable[[int], int]
Reweight = Callable[[np.ndarray], np.ndarray]
EpochHook = Callable[[RoundState, EpochReport], None]


def validate(model: RoundModel, state: RoundState | None = None) -> dict[str, float]:
    """The model's validation as plain floats; KeyError without ``acc`` or ``ap``. With
    ``state``, the time it takes is added to ``state.validation_seconds``."""
    began = time.perf_counter()
    metrics = {str(k): float(v) for k, v in dict(model.validate()).items()}
    missing = set(METRICS) - set(metrics)
    if missing:
        raise KeyError(f"validate() must return 'acc' and 'ap'; missing {sorted(missing)}")
    if state is not None:
        state.validation_seconds += time.perf_counter() - began
    return metrics


def train_round(
    model: RoundModel,
    config: RoundConfig,
    indices: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    *,
    epoch_seed: EpochSeed | None = None,
    reweight: Reweight | None = None,
    state: RoundState | None = None,
    on_epoch: EpochHook | None = None,
) -> RoundResult:
    """Train one round (see the module's docstring for the rule).

    ``epoch_seed(e)`` gives the seed of the round's epoch ``e`` (from 0; default 0).
    ``state``: a state from ``on_epoch`` to continue from (the model already restored to
    that epoch); the round starts afresh without it. The learning rate is the model's.
    """
    start = time.perf_counter()
    state = state if state is not None else RoundState.start(config)
    validated_before = state.validation_seconds
    current = None if weights is None else np.array(weights, dtype=np.float64)
    for _ in range(1, state.epoch):  # a continued round: the decay of the epochs done
        current = _reweighted(current, reweight)
    while state.epoch < config.epochs and not state.stopped:
        if state.epoch > 0:
            current = _reweighted(current, reweight)
        seed = epoch_seed(state.epoch) if epoch_seed is not None else 0
        report = _train_epoch(model, config, state, indices, current, seed)
        if on_epoch is not None:
            on_epoch(state, report)
    validation = _finish(model, config, state)
    losses = [record["loss"] for record in state.history]
    return RoundResult(
        validation=validation,
        epochs=state.epoch,
        lr_drops=state.plateau.drops,
        loss=float(np.mean(losses)) if losses else None,
        seconds=time.perf_counter() - start,
        stopped=state.stopped,
        weights=current,
        state=state,
        validation_seconds=state.validation_seconds - validated_before,
    )


def _reweighted(weights: np.ndarray | None, reweight: Reweight | None) -> np.ndarray | None:
    if weights is None or reweight is None:
        return weights
    return np.asarray(reweight(weights), dtype=np.float64)


def _train_epoch(
    model: RoundModel,
    config: RoundConfig,
    state: RoundState,
    indices: np.ndarray | None,
    weights: np.ndarray | None,
    seed: int,
) -> EpochReport:
    """Train and (with early stopping) judge one epoch; the state moves on by one epoch."""
    began = time.perf_counter()
    lr = float(model.lr)
    loss = float(model.train_epoch(indices, None if weights is None else weights.copy(), seed))
    state.epoch += 1
    record = {"epoch": state.epoch, "loss": loss}
    best = dropped = False
    if config.patience:
        metrics = validate(model, state)
        record.update(val_acc=metrics["acc"], val_ap=metrics["ap"])
        best, dropped = _judge(model, config, state, metrics)
    record.update(lr=lr, seconds=round(time.perf_counter() - began, 2))
    state.history.append(record)
    return EpochReport(record, best, dropped, state.stopped)


def _judge(
    model: RoundModel, config: RoundConfig, state: RoundState, metrics: dict[str, float]
) -> tuple[bool, bool]:
    """Best-state tracking and the plateau rule for one validated epoch: (best, dropped)."""
    score = metrics[config.metric]
    best = state.best_score is None or score > state.best_score
    if best:
        state.best_score, state.best_epoch = score, state.epoch
        state.best_validation = dict(metrics)
        state.best_snapshot = model.snapshot()
    dropped = state.plateau.step(score) is Step.DROP
    if dropped:
        state.stopped = not drop_lr(model, config.min_lr)
    return best, dropped


def _finish(model: RoundModel, config: RoundConfig, state: RoundState) -> dict[str, float]:
    """Leave the model in the round's result and return that result's validation."""
    if not config.patience or state.best_snapshot is None:
        return validate(model, state)  # no early stopping (or no epoch): the last state
    if state.best_epoch != state.epoch:
        model.restore(state.best_snapshot)
    return dict(state.best_validation)
