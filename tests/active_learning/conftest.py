"""Fixtures: the digits task, a scripted learner that records what the loop asks of it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pytest

from active_learning.mlp_learner import ArrayTask, digits_task


@pytest.fixture(scope="session")
def digits() -> ArrayTask:
    return digits_task(seed=0)


class ScriptedLearner:
    """A learner whose validation metrics follow a script; it records every call.

    Its "model" is an epoch counter (``snapshot``/``restore`` copy it; ``restores`` lists the
    counts restored); ``validate`` returns the next score of the script (``acc`` and ``ap``
    alike), and its position is part of ``state_dict``, so a resumed run goes on with the
    script; ``mc_probabilities`` is a fixed function of the pool index (pool item i has P(fake)
    spread around ``probs[i]``), so scores are known in advance.
    """

    def __init__(self, pool_size: int, accs: Iterable[float] = (), probs=None) -> None:
        self.accs = list(accs)
        self.pool_probs = np.linspace(0.05, 0.95, pool_size) if probs is None else np.asarray(probs)
        self.epochs: list[dict[str, Any]] = []
        self.restores: list[int] = []
        self.validations = 0
        self.trained = 0
        self._lr = 0.0

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = value

    def reset(self, seed: int) -> None:
        self._lr, self.trained = 0.1, 0

    def train_epoch(self, indices: np.ndarray, weights: np.ndarray, seed: int) -> float:
        self.epochs.append(
            {"indices": indices.copy(), "weights": weights.copy(), "seed": seed, "lr": self.lr}
        )
        self.trained += 1
        return 0.5

    def validate(self) -> dict[str, float]:
        acc = self.accs[self.validations] if self.validations < len(self.accs) else 0.5
        self.validations += 1
        return {"acc": acc, "ap": acc}

    def mc_probabilities(self, indices: np.ndarray, passes: int, seed: int) -> np.ndarray:
        spread = np.linspace(-0.04, 0.04, passes)[:, None]
        return np.clip(self.pool_probs[indices][None, :] + spread, 0.0, 1.0)

    def snapshot(self) -> dict[str, int]:
        return {"trained": self.trained}

    def restore(self, snapshot: dict[str, int]) -> None:
        self.trained = snapshot["trained"]
        self.restores.append(snapshot["trained"])

    def state_dict(self) -> dict[str, Any]:
        return {"trained": self.trained, "lr": self._lr, "validations": self.validations}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.trained, self._lr = state["trained"], state["lr"]
        self.validations = state["validations"]
