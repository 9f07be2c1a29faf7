"""The learner interface: what the active-learning loop needs from a model.

The loop owns the randomness (it passes a seed to every call), the labelled and pool indices,
the per-sample loss weights and the history; each training round (warm-up, then one per
iteration) is :func:`rfd_common.training_round.train_round`, which owns the epochs, validation,
early stopping and the learning-rate drops. A learner owns a model, its optimiser and the data.
"Pool item i" means row i of the learner's training data, whose labels the loop holds as an
oracle array (simulation). ``UniversalFakeDetect`` implements this with its own training code;
:class:`active_learning.mlp_learner.MLPLearner` is a small reference implementation (a dropout
MLP on arrays, used by the tests and the digits benchmark).

Determinism contract (resuming relies on it): every random choice inside ``reset``,
``train_epoch`` and ``mc_probabilities`` comes from the ``seed`` argument, and ``state_dict``
captures everything else that changes (weights, optimiser state, learning rate), so
``load_state_dict(state_dict())`` followed by the same calls gives the same results.

Unreadable pool items: a learner whose data may hold items it cannot use (an image that does
not decode, NaN cached features) also implements :class:`ReportsUnreadable`. The loop then
leaves those items out of the pool before drawing the initial set and before every MC-dropout
pass and scoring, counts them in the results, and never labels them. Without it, every pool
item must be readable: non-finite MC-dropout probabilities stop the loop with an error.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from rfd_common.training_round import RoundModel


@runtime_checkable
class Learner(RoundModel, Protocol):
    """A binary classifier with dropout, trained (by rounds) and queried by the loop."""

    lr: float
    """The optimiser's learning rate, read and written by the loop and its rounds: early
    stopping divides it by 10 (see :mod:`active_learning.loop` for where a round starts)."""

    def reset(self, seed: int) -> None:
        """A fresh model and optimiser (start of a run), initialised from ``seed``."""

    def train_epoch(self, indices: np.ndarray, weights: np.ndarray, seed: int) -> float:
        """One epoch over pool items ``indices`` (shuffled with ``seed``), the per-sample loss
        of item ``indices[i]`` multiplied by ``weights[i]`` (all 1 without the weighted loss);
        returns the mean loss."""

    def validate(self) -> dict[str, float]:
        """Metrics on the learner's own validation data: at least ``acc`` and ``ap``."""

    def mc_probabilities(self, indices: np.ndarray, passes: int, seed: int) -> np.ndarray:
        """P(positive) (= P(fake)) of pool items ``indices`` in each of ``passes`` MC-dropout
        passes, [passes, len(indices)]: dropout on, BatchNorm frozen
        (:mod:`active_learning.mc_dropout`)."""

    def snapshot(self) -> Any:
        """A copy of the trained weights (not the optimiser): with early stopping a round keeps
        its best epoch's snapshot in memory, so leave out what never changes (a frozen backbone:
        the head suffices)."""

    def restore(self, snapshot: Any) -> None:
        """Load a :meth:`snapshot` back (the optimiser and learning rate stay as they are)."""

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: tensors, numbers, strings, lists and dicts only (it is
        saved with ``torch.save`` and read back with ``weights_only=True``); leave out what
        never changes (a frozen backbone: the head and its optimiser suffice)."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`."""


PER_ITEM_PROBABILITIES = "per_item_probabilities"
"""Optional learner attribute: True when ``mc_probabilities`` of an item does not depend on
which other items are asked in the same call (one dropout mask per pass, shared by every item:
seeded by ``seed`` alone). The loop then asks for the pool chunk by chunk, in bounded memory
(:mod:`active_learning.query_step`); without it, once for every candidate."""


@runtime_checkable
class HasHeadInputs(Protocol):
    """Optional learner method, for BADGE (:mod:`active_learning.badge`)."""

    def head_inputs(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The inputs of the last (linear, sigmoid) layer for pool items ``indices`` [n, D],
        and its P(positive) [n], with dropout off."""


@runtime_checkable
class ReportsUnreadable(Protocol):
    """Optional learner method: which pool items the learner cannot read."""

    def unreadable_items(self, indices: np.ndarray) -> np.ndarray:
        """A bool mask over pool items ``indices``: True where the item cannot be read (and so
        can be neither trained on nor scored). Must be deterministic for a given dataset."""
