"""The active-learning loop (DESIGN section 6), resumable after a kill.

1. Draw the initial set: ``num_samples_per_class`` of each class, without replacement.
2. Train ``al_niter_warmup`` epochs (iteration 0).
3. For ``al_iter`` iterations: score the unlabelled pool (or a random ``subsample_size`` of it)
   from ``dropout_iter`` MC-dropout passes, select ``query`` images (class-balanced with
   ``balance_acquisition``), add them (weight w^3 with ``use_weighted_loss``, else 1), train
   ``niter`` epochs on everything labelled, validate.

Unreadable pool items (a learner implementing :class:`~active_learning.learner.ReportsUnreadable`
says which): never drawn into the initial set (an unreadable draw is replaced by another of its
class), never MC-dropout passed, scored or queried; they are counted in every record and in the
results (``unreadable_pool_images``), and kept in the state file.

Training: the warm-up and the training of every iteration are each one training round,
:func:`rfd_common.training_round.train_round` (normal training's round: see its docstring for
the rule), judged on ``al_earlystop_metric``, with the weighted loss's decay applied at the
start of every epoch but the first of the round. Early stopping (``earlystop_epoch`` > 0 is its
patience) counts, as ``al_patience_unit`` says:

* ``iteration`` (the default, as CS545's ``active_learning_net.py``): one score per iteration,
  the validation after its round, from iteration 1 on (CS545 created its EarlyStopping after
  the warm-up). The rounds themselves train all their epochs without early stopping (validated
  once, left in their last state). After ``earlystop_epoch`` iterations without a gain the
  learning rate is divided by 10 and later rounds train at it; when it falls below ``min_lr``
  the loop stops after that iteration (no further queries), as CS545 did.
* ``epoch``: each round early-stops on its own epochs with the same rule, starts at the rate
  found after ``reset`` (new labels are learnt at the full rate even when an earlier round
  dropped it), and ends in its best epoch; the loop always runs every iteration.

Randomness: every draw uses a seed derived from (``seed``, purpose, iteration, epoch), never a
running generator, so a run resumed from its state file repeats exactly what the killed run
would have done. After each iteration the state (labelled indices in order, loss weights,
history, the iteration-level early stopping and learning rate, the learner's state) is written
to ``<out>/al_state.pt`` atomically, then the results (:mod:`active_learning.results`). Testing
the final model on every source is the caller's: the learner is left in its final state, and
``on_iteration`` may evaluate after any iteration.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from active_learning.acquisition import ALL, Acquisition, get_acquisition
from active_learning.config import ALConfig, ConfigError
from active_learning.learner import (
    PER_ITEM_PROBABILITIES,
    HasHeadInputs,
    Learner,
    ReportsUnreadable,
)
from active_learning.query_step import QUERY_CHUNK_ROWS, PoolScan, QueryRequest, stream_query
from active_learning.results import IterationRecord, write_results
from active_learning.selection import SEED_BOUND
from active_learning.weighted_loss import decay_weights, query_weights
from rfd_common.files import atomic_write
from rfd_common.fingerprints import must_match_on_resume
from rfd_common.phase_times import PhaseTimes
from rfd_common.training_round import (
    Plateau,
    RoundConfig,
    RoundResult,
    Step,
    drop_lr,
    train_round,
)

STATE_FILE = "al_state.pt"
STATE_VERSION = 2  # 2: the shared training round and the iteration-level early stopping

IterationHook = Callable[[IterationRecord, Learner], "dict[str, Any] | None"]
Log = Callable[[str], None]
UnreadableCheck = Callable[[np.ndarray], np.ndarray]  # pool indices -> bool mask (unreadable)
NO_INDICES = np.zeros(0, dtype=np.int64)
NO_INDICES.setflags(write=False)  # shared: never to be filled in


class Purpose(IntEnum):
    """What a derived seed is for (part of the seed, so streams never overlap)."""

    RESET = 0
    INITIAL_SET = 1
    TRAIN = 2
    MC_DROPOUT = 3
    SUBSAMPLE = 4
    SELECT = 5
    SAMPLE = 6  # the Gumbel noise of a stochastic acquisition


def derive_seed(seed: int, purpose: Purpose, iteration: int = 0, epoch: int = 0) -> int:
    """A 31-bit seed for one (purpose, iteration, epoch) of a run seeded with ``seed``."""
    state = np.random.SeedSequence([seed, int(purpose), iteration, epoch]).generate_state(1)
    return int(state[0] & 0x7FFFFFFF)


def _rng(seed: int, purpose: Purpose, iteration: int = 0) -> np.random.Generator:
    return np.random.default_rng(derive_seed(seed, purpose, iteration))


@dataclass
class LoopResult:
    """The end of one strategy's run; the learner is left in its final state."""

    strategy: str
    labelled: np.ndarray  # pool indices in the order they were labelled
    weights: np.ndarray  # their loss weights at the end
    history: list[dict[str, Any]]
    state_path: Path | None
    results_json: Path | None
    unreadable: np.ndarray = field(default_factory=lambda: NO_INDICES.copy())  # left out
    # wall seconds per phase in this process (setup, training, queries, validation, saving,
    # hook): see rfd_common.phase_times; a resumed run counts only what it ran itself
    timings: dict[str, float] = field(default_factory=dict)


def unreadable_check(learner: Learner) -> UnreadableCheck | None:
    """The learner's ``unreadable_items`` (shape-checked), or None if it has none."""
    if not isinstance(learner, ReportsUnreadable):
        return None

    def check(indices: np.ndarray) -> np.ndarray:
        mask = np.asarray(learner.unreadable_items(indices), dtype=bool)
        if mask.shape != (len(indices),):
            raise ValueError(
                f"unreadable_items returned shape {mask.shape} for {len(indices)} indices"
            )
        return mask

    return check


def draw_initial_set(
    labels: np.ndarray,
    per_class: int,
    rng: np.random.Generator,
    unreadable: UnreadableCheck | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``per_class`` readable pool indices of every class (0 then 1), without replacement, and
    the (sorted) unreadable ones met on the way.

    Without unreadable items the draw is ``rng.choice(members, per_class)`` per class; each
    unreadable draw is replaced by a further draw (same ``rng``) among the class's remaining
    members, so the result depends only on the seed and the data.
    """
    chosen, bad = [], []
    for value in (0, 1):
        members = np.flatnonzero(labels == value)
        if members.size < per_class:
            raise ConfigError(
                f"--num_samples_per_class {per_class}: the pool has only {members.size} "
                f"images of class {value}"
            )
        left = np.ones(members.size, dtype=bool)  # members not drawn yet
        picked: list[np.ndarray] = []
        need, class_bad = per_class, 0
        while need > 0:
            if left.sum() < need:
                raise ConfigError(
                    f"--num_samples_per_class {per_class}: the pool has only "
                    f"{members.size - class_bad} readable images of class {value} "
                    f"({class_bad} unreadable left out)"
                )
            positions = rng.choice(np.flatnonzero(left), size=need, replace=False)
            left[positions] = False
            draw = members[positions]
            if unreadable is not None:
                mask = unreadable(draw)
                bad.append(draw[mask])
                class_bad += int(mask.sum())
                draw = draw[~mask]
            picked.append(draw)
            need -= draw.size
        chosen.append(np.sort(np.concatenate(picked)))
    found = np.sort(np.concatenate(bad)) if bad else NO_INDICES
    return np.concatenate(chosen).astype(np.int64), found.astype(np.int64)


def initial_indices(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """``per_class`` pool indices of every class (0 then 1), without replacement."""
    return draw_initial_set(labels, per_class, rng)[0]


def _plain(value: Any) -> Any:
    """Python scalars and containers only (JSON and ``torch.load(weights_only=True)``)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, torch.Tensor):
        return value.tolist()
    return value


def round_config(config: ALConfig, epochs: int) -> RoundConfig:
    """The training round of one iteration (``epochs``: warm-up or ``niter``)."""
    per_epoch = config.al_patience_unit == "epoch"
    return RoundConfig(
        epochs=epochs,
        patience=config.earlystop_epoch if per_epoch else 0,
        metric=config.al_earlystop_metric,
        min_lr=config.min_lr,
        margin=config.earlystop_delta,
    )


def train_iteration(
    learner: Learner,
    indices: np.ndarray,
    weights: np.ndarray,
    epochs: int,
    config: ALConfig,
    lr: float,
    iteration: int,
) -> RoundResult:
    """Train iteration ``iteration``'s round at learning rate ``lr``; the result holds the
    weights after their per-epoch decay."""
    learner.lr = lr
    reweight = None
    if config.use_weighted_loss:
        reweight = functools.partial(decay_weights, decay=config.weighted_loss_decay)
    return train_round(
        learner,
        round_config(config, epochs),
        indices,
        weights,
        epoch_seed=lambda epoch: derive_seed(config.seed, Purpose.TRAIN, iteration, epoch),
        reweight=reweight,
    )


class Query(NamedTuple):
    """One query: the chosen pool indices and their scores (best first), and the candidates
    found unreadable and left out before scoring (sorted)."""

    indices: np.ndarray
    scores: np.ndarray
    unreadable: np.ndarray


def query(
    learner: Learner,
    labels: np.ndarray,
    labelled: np.ndarray,
    config: ALConfig,
    acquisition: Acquisition,
    iteration: int,
    excluded: np.ndarray | None = None,
) -> Query:
    """The next query. Candidates: the unlabelled pool (or its subsample) minus ``excluded``
    (pool items already known unreadable), minus those the learner reports unreadable now
    (:class:`~active_learning.learner.ReportsUnreadable`), before any MC-dropout pass. Raises
    ValueError if a remaining candidate gets a non-finite probability.

    A learner whose probabilities of an item do not depend on the other items of the call
    (``per_item_probabilities``: shared dropout masks) is asked chunk by chunk, so the memory
    of the step is bounded whatever the pool size (:mod:`active_learning.query_step`); another
    is asked once for every candidate.
    """
    taken = labelled
    if excluded is not None and len(excluded):
        taken = np.concatenate([labelled, np.asarray(excluded, dtype=np.int64)])
    per_item = bool(getattr(learner, PER_ITEM_PROBABILITIES, False))
    subsample = config.subsample_size
    if acquisition.badge:  # k-means++ over a stated number of random candidates
        subsample = min(subsample or config.badge_candidates, config.badge_candidates)
        if not isinstance(learner, HasHeadInputs):
            raise ConfigError(f"--acq_func badge: {type(learner).__name__} has no head_inputs")
    scan = PoolScan(
        taken,
        subsample,
        int(_rng(config.seed, Purpose.SUBSAMPLE, iteration).integers(SEED_BOUND)),
        chunk_rows=QUERY_CHUNK_ROWS if per_item else max(labels.size, 1),
    )
    request = QueryRequest(
        acquisition, config.query, config.balance_acquisition, config.label_free, labels,
        config.acq_temperature,
    )  # fmt: skip
    seed = derive_seed(config.seed, Purpose.MC_DROPOUT, iteration)
    rng = _rng(config.seed, Purpose.SELECT, iteration)
    tie_seed = int(rng.integers(SEED_BOUND))
    found = stream_query(
        request,
        scan,
        lambda rows: learner.mc_probabilities(rows, config.dropout_iter, seed),
        tie_seed=tie_seed,
        select_rng=rng,
        unreadable=unreadable_check(learner),
        passes=config.dropout_iter,
        sample_seed=derive_seed(config.seed, Purpose.SAMPLE, iteration),
        head_inputs=getattr(learner, "head_inputs", None),
    )
    return Query(found.indices, found.scores, found.unreadable)


@dataclass
class _Progress:
    """What the state file holds besides the learner."""

    labelled: np.ndarray
    weights: np.ndarray
    history: list[dict[str, Any]]
    base_lr: float  # the rate after reset: where every round starts (patience in epochs)
    next_iteration: int
    excluded: np.ndarray  # unreadable pool items left out (sorted)
    lr: float  # the rate the next round trains at (patience in iterations)
    plateau: Plateau  # early stopping over iterations (patience in iterations)
    stopped: bool = False  # the rate fell below the floor: no further iteration

    def next_lr(self, config: ALConfig) -> float:
        """The learning rate of the next round."""
        return self.base_lr if config.al_patience_unit == "epoch" else self.lr


class _StateFile:
    """``<out>/al_state.pt``: progress + learner state after the last finished iteration."""

    def __init__(self, path: Path, config: ALConfig, strategy: str, labels: np.ndarray) -> None:
        self.path, self.strategy = path, strategy
        self.config = {**config.to_dict(), "acq_func": strategy}
        self.must_match = set(must_match_on_resume(config))  # the fields not marked RESUMABLE
        self.fingerprint = hashlib.sha256(labels.astype(np.int8).tobytes()).hexdigest()

    def load(self, learner: Learner) -> _Progress:
        saved = torch.load(self.path, weights_only=True)
        self._check(saved)
        learner.load_state_dict(saved["learner"])
        return _Progress(
            labelled=saved["labelled"].numpy().astype(np.int64),
            weights=saved["weights"].numpy().astype(np.float64),
            history=list(saved["history"]),
            base_lr=float(saved["base_lr"]),
            next_iteration=int(saved["iteration"]) + 1,
            excluded=saved["excluded"].numpy().astype(np.int64),
            lr=float(saved["lr"]),
            plateau=Plateau(**saved["plateau"]),
            stopped=bool(saved["stopped"]),
        )

    def save(self, progress: _Progress, iteration: int, learner: Learner) -> None:
        state = {
            "version": STATE_VERSION,
            "strategy": self.strategy,
            "config": self.config,
            "fingerprint": self.fingerprint,
            "iteration": iteration,
            "labelled": torch.from_numpy(progress.labelled.copy()),
            "weights": torch.from_numpy(progress.weights.copy()),
            "history": progress.history,
            "base_lr": progress.base_lr,
            "excluded": torch.from_numpy(progress.excluded.copy()),
            "lr": progress.lr,
            "plateau": dataclasses.asdict(progress.plateau),
            "stopped": progress.stopped,
            "learner": learner.state_dict(),
        }
        atomic_write(self.path, lambda handle: torch.save(state, handle))

    def _check(self, saved: dict[str, Any]) -> None:
        hint = (
            f"use another output folder, or start over (--restart, or delete {self.path}); "
            "rerun with the same settings to resume"
        )
        if saved.get("version") != STATE_VERSION:
            raise ConfigError(f"state file version {saved.get('version')}: {hint}")
        if saved["fingerprint"] != self.fingerprint:
            raise ConfigError(f"the state file was written for another pool; {hint}")
        for key, value in saved["config"].items():
            now = self.config.get(key)
            if key in self.must_match and now != value:
                raise ConfigError(
                    f"the state file was written with {key}={value!r}, now {now!r}; {hint}"
                )


def _start(learner: Learner, labels: np.ndarray, config: ALConfig) -> _Progress:
    learner.reset(derive_seed(config.seed, Purpose.RESET))
    initial_rng = _rng(config.seed, Purpose.INITIAL_SET)
    labelled, unreadable = draw_initial_set(
        labels, config.num_samples_per_class, initial_rng, unreadable_check(learner)
    )
    lr = float(learner.lr)
    plateau = Plateau(config.earlystop_epoch, margin=config.earlystop_delta)
    return _Progress(labelled, np.ones(labelled.size), [], lr, 0, unreadable, lr, plateau)


def run_active_learning(
    learner: Learner,
    labels: np.ndarray,
    config: ALConfig,
    out_dir: Path | None = None,
    *,
    strategy: str | None = None,
    on_iteration: IterationHook | None = None,
    resume: bool = True,
    log: Log | None = print,
    writes: bool = True,
) -> LoopResult:
    """Run (or resume) one strategy's loop; ``labels`` is the oracle, one 0/1 per pool item.

    With ``out_dir``, state and results go there, and an existing state file is resumed
    (``resume=False`` starts over); ``writes`` False reads the state but writes nothing (the
    ranks but 0 of a job under torchrun, which run the same loop in step). ``strategy``
    overrides ``config.acq_func``.
    ``on_iteration(record, learner)`` runs after each iteration's training (the learner in that
    iteration's final state); a dict it returns is stored in the record's ``extra``.
    """
    config.validate()
    strategy = strategy or config.acq_func
    if strategy == ALL:
        raise ConfigError("--acq_func 0 runs several strategies: use compare.run_strategies")
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be a one-dimensional array of 0 (real) and 1 (fake)")
    run = _Run(learner, labels, config, strategy, out_dir, on_iteration, log or (lambda _: None))
    run.writes = writes
    with run.timer("setup"):
        run.progress = _open(
            learner, labels, config, run.state if resume else None, strategy, run.say
        )
    first = _first_iteration(run.progress, config, strategy, run.say)
    for iteration in range(first, config.al_iter + 1):
        if not run.iteration(iteration):
            break
    return run.result()


class _Run:
    """One strategy's run in this process: the iterations, their timing, saving and result."""

    def __init__(
        self, learner: Learner, labels: np.ndarray, config: ALConfig, strategy: str,
        out_dir: Path | None, on_iteration: IterationHook | None, say: Log,
    ) -> None:  # fmt: skip
        self.learner, self.labels, self.config, self.strategy = learner, labels, config, strategy
        self.acquisition = get_acquisition(strategy)
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.state = (
            None
            if self.out_dir is None
            else _StateFile(self.out_dir / STATE_FILE, config, strategy, labels)
        )
        self.on_iteration, self.say = on_iteration, say
        self.timer = PhaseTimes()
        self.progress: _Progress
        self.results_json: Path | None = None
        self.writes = True

    def iteration(self, iteration: int) -> bool:
        """Query (after the warm-up), train, record and save one iteration; whether to go on."""
        progress, config = self.progress, self.config
        new, query_seconds = NO_INDICES, 0.0
        if iteration > 0:
            began = time.perf_counter()
            new, found = _query_and_label(
                self.learner, self.labels, progress, config, self.acquisition, iteration
            )
            query_seconds = time.perf_counter() - began
            self.timer.add("queries", query_seconds)
            if found:
                self.say(f"[{self.strategy}] {found} more unreadable pool images left out")
            if new.size == 0:
                self.say(f"[{self.strategy}] the pool is exhausted after iteration {iteration - 1}")
                return False
        record, note = _train_and_record(
            self.learner, self.labels, progress, config, iteration, new.size
        )
        record.query_seconds = query_seconds
        self.timer.add("training", record.train_seconds)
        self.timer.add("validation", record.validate_seconds)
        if self.on_iteration is not None:
            with self.timer("hook"):
                record.extra.update(_plain(self.on_iteration(record, self.learner) or {}))
        progress.history.append(_plain(record.to_dict()))
        progress.next_iteration = iteration + 1
        if self.state is not None and self.writes:
            with self.timer("saving"):
                self.state.save(progress, iteration, self.learner)
                self._write_results()
        self.say(_iteration_line(self.strategy, config, record) + note)
        return not progress.stopped

    def _write_results(self) -> None:
        assert self.out_dir is not None
        progress = self.progress
        self.results_json = write_results(
            self.out_dir, self.strategy, self.config, progress.history, progress.excluded,
            self.timer.as_dict(),
        )  # fmt: skip

    def result(self) -> LoopResult:
        """The run's result; results are written even when nothing was left to run."""
        progress = self.progress
        done = self.results_json is not None
        if self.out_dir is not None and self.writes and not done and progress.history:
            self._write_results()
        return LoopResult(
            self.strategy,
            progress.labelled,
            progress.weights,
            progress.history,
            None if self.state is None else self.state.path,
            self.results_json,
            progress.excluded,
            self.timer.as_dict(),
        )


def _open(
    learner: Learner,
    labels: np.ndarray,
    config: ALConfig,
    state: _StateFile | None,
    strategy: str,
    say: Log,
) -> _Progress:
    """The progress of a run: resumed from ``state``'s file when there is one, else new."""
    if state is not None and state.path.exists():
        progress = state.load(learner)
        say(
            f"[{strategy}] resuming from {state.path} after iteration {progress.next_iteration - 1}"
        )
        return progress
    progress = _start(learner, labels, config)
    if progress.excluded.size:
        say(f"[{strategy}] {progress.excluded.size} unreadable pool images left out")
    if config.simulation_only:
        say(f"[{strategy}] simulation only: " + "; ".join(config.true_label_uses))
    return progress


def _first_iteration(progress: _Progress, config: ALConfig, strategy: str, say: Log) -> int:
    """The next iteration to run (past ``al_iter`` when early stopping ended the run)."""
    if not progress.stopped:
        return progress.next_iteration
    say(f"[{strategy}] stopped early after iteration {progress.next_iteration - 1}: the learning "
        "rate fell below the floor")  # fmt: skip
    return config.al_iter + 1


def _train_and_record(
    learner: Learner,
    labels: np.ndarray,
    progress: _Progress,
    config: ALConfig,
    iteration: int,
    queried: int,
) -> tuple[IterationRecord, str]:
    """Train the iteration's round, judge it (patience in iterations) and make its record
    (without ``query_seconds``); returns the record and a note for the log line."""
    epochs = config.al_niter_warmup if iteration == 0 else config.niter
    outcome = train_iteration(
        learner,
        progress.labelled,
        progress.weights,
        epochs,
        config,
        progress.next_lr(config),
        iteration,
    )
    progress.weights = outcome.weights
    drops, note = _judge_iteration(learner, progress, config, outcome, iteration)
    record = _record(
        iteration, labels[progress.labelled], queried, 0.0, outcome, progress.excluded.size
    )
    record.lr_drops += drops
    record.lr, record.stopped_early = float(learner.lr), progress.stopped
    return record, note


def _query_and_label(
    learner: Learner,
    labels: np.ndarray,
    progress: _Progress,
    config: ALConfig,
    acquisition: Acquisition,
    iteration: int,
) -> tuple[np.ndarray, int]:
    """Query, then add the new pool items (and their loss weights) to ``progress``; returns
    them (none: the pool is exhausted) and how many unreadable candidates were found (left out
    for good)."""
    new, new_scores, unreadable = query(
        learner, labels, progress.labelled, config, acquisition, iteration, progress.excluded
    )
    if unreadable.size:
        progress.excluded = np.union1d(progress.excluded, unreadable).astype(np.int64)
    if new.size:
        added = query_weights(new_scores) if config.use_weighted_loss else np.ones(new.size)
        progress.labelled = np.concatenate([progress.labelled, new])
        progress.weights = np.concatenate([progress.weights, added])
    return new, int(unreadable.size)


def _judge_iteration(
    learner: Learner, progress: _Progress, config: ALConfig, outcome: RoundResult, iteration: int
) -> tuple[int, str]:
    """Early stopping with patience in iterations: the iteration's score goes to the loop's
    plateau (from iteration 1 on, as CS545). Returns (LR drops, a note for the log line)."""
    if config.al_patience_unit != "iteration" or not config.earlystop_epoch or iteration == 0:
        return 0, ""
    if progress.plateau.step(outcome.validation[config.al_earlystop_metric]) is not Step.DROP:
        return 0, ""
    progress.stopped = not drop_lr(learner, config.min_lr)
    progress.lr = float(learner.lr)
    note = f"; no gain for {config.earlystop_epoch} iterations: lr -> {progress.lr:g}"
    return 1, note + (", below the floor: stop" if progress.stopped else "")


def _iteration_line(strategy: str, config: ALConfig, record: IterationRecord) -> str:
    left_out = f", {record.unreadable} unreadable left out" if record.unreadable else ""
    return (
        f"[{strategy}] iteration {record.iteration}/{config.al_iter}: {record.labelled} labelled "
        f"({record.labelled_real} real, {record.labelled_fake} fake{left_out}), val acc "
        f"{record.val_acc:.4f} AP {record.val_ap:.4f}, query {record.query_seconds:.2f} s, "
        f"train {record.train_seconds:.2f} s ({record.epochs} epochs), "
        f"validate {record.validate_seconds:.2f} s"
    )


def _record(
    iteration: int,
    labelled_labels: np.ndarray,
    queried: int,
    query_seconds: float,
    outcome: RoundResult,
    unreadable: int = 0,
) -> IterationRecord:
    """The history entry of one iteration (``labelled_labels``: labels of the labelled set;
    ``unreadable``: pool items left out so far)."""
    fake = int(labelled_labels.sum())
    return IterationRecord(
        iteration=iteration,
        labelled=int(labelled_labels.size),
        labelled_real=int(labelled_labels.size) - fake,
        labelled_fake=fake,
        queried=int(queried),
        val_acc=float(outcome.validation["acc"]),
        val_ap=float(outcome.validation["ap"]),
        query_seconds=query_seconds,
        train_seconds=outcome.training_seconds,
        epochs=outcome.epochs,
        lr_drops=outcome.lr_drops,
        train_loss=outcome.loss,
        unreadable=int(unreadable),
        validation=outcome.validation,
        validate_seconds=outcome.validation_seconds,
    )
