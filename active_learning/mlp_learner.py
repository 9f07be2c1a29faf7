"""A reference :class:`~active_learning.learner.Learner`: a small dropout MLP on feature arrays,
and a binary task made from scikit-learn's digits for tests and the sanity benchmark.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.metrics import average_precision_score
from torch import nn

from active_learning.mc_dropout import module_probabilities
from active_learning.weighted_loss import weighted_bce_with_logits


@dataclass
class ArrayTask:
    """Pool, validation and test arrays of a binary task (labels 0/1)."""

    pool_x: np.ndarray
    pool_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


def digits_task(
    seed: int = 0, positive: tuple[int, ...] = (3, 5, 8, 9), val: int = 200, test: int = 500
) -> ArrayTask:
    """scikit-learn's 8x8 digits (1,797 images) as a binary task: is the digit in ``positive``?

    Pixels scaled to [0, 1]; the split into pool, validation and test is seeded.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = np.isin(digits.target, positive).astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    v, t = order[:val], order[val : val + test]
    pool = order[val + test :]
    return ArrayTask(x[pool], y[pool], x[v], y[v], x[t], y[t])


def evaluate_probabilities(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Accuracy at 0.5 and average precision."""
    labels = np.asarray(labels)
    acc = float(((probs >= 0.5).astype(int) == labels).mean())
    both = labels.min() != labels.max()
    return {"acc": acc, "ap": float(average_precision_score(labels, probs)) if both else 0.0}


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run the block with ``count`` torch CPU threads (None: unchanged), then restore."""
    previous = torch.get_num_threads()
    if count is None or count == previous:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class MLPLearner:
    """input -> Linear(hidden) -> ReLU -> Dropout(p) -> Linear(1), Adam, weighted BCE.

    ``pool_x``/``pool_y`` are the training pool (the loop's indices point into them);
    ``val_x``/``val_y`` the validation data. Runs on the CPU in a few milliseconds per epoch;
    ``threads`` (default 1) torch threads: for matrices this small more threads only wait on
    each other, ten times slower on a busy machine.
    """

    def __init__(
        self,
        pool_x: np.ndarray,
        pool_y: np.ndarray,
        val_x: np.ndarray,
        val_y: np.ndarray,
        *,
        hidden: int = 64,
        dropout: float = 0.5,
        lr: float = 1e-2,
        batch_size: int = 32,
        threads: int | None = 1,
    ) -> None:
        self.pool_x = torch.as_tensor(pool_x, dtype=torch.float32)
        self.pool_y = torch.as_tensor(pool_y, dtype=torch.float32)
        self.val_x = torch.as_tensor(val_x, dtype=torch.float32)
        self.val_y = np.asarray(val_y)
        self.hidden, self.dropout, self.initial_lr = hidden, dropout, lr
        self.batch_size = batch_size
        self.threads = threads
        self.model: nn.Sequential | None = None
        self.optimizer: torch.optim.Optimizer | None = None

    def reset(self, seed: int) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            self.model = nn.Sequential(
                nn.Linear(self.pool_x.shape[1], self.hidden),
                nn.ReLU(),
                nn.Dropout(self.dropout),
                nn.Linear(self.hidden, 1),
            )
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.initial_lr)

    @property
    def lr(self) -> float:
        if self.optimizer is None:
            return self.initial_lr
        return float(self.optimizer.param_groups[0]["lr"])

    @lr.setter
    def lr(self, value: float) -> None:
        if self.optimizer is None:
            self.initial_lr = float(value)
            return
        for group in self.optimizer.param_groups:
            group["lr"] = float(value)

    def train_epoch(self, indices: np.ndarray, weights: np.ndarray, seed: int) -> float:
        indices = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        weights = torch.as_tensor(np.asarray(weights), dtype=torch.float32)
        self.model.train()
        total = 0.0
        with torch.random.fork_rng(devices=[]), torch_threads(self.threads):
            torch.default_generator.manual_seed(seed)
            order = torch.randperm(len(indices))
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                rows = indices[batch]
                logits = self.model(self.pool_x[rows]).squeeze(1)
                loss = weighted_bce_with_logits(logits, self.pool_y[rows], weights[batch])
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                total += loss.item() * len(batch)
        return total / max(len(indices), 1)

    def predict(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        """P(positive) with dropout off."""
        self.model.eval()
        with torch.no_grad(), torch_threads(self.threads):
            logits = self.model(torch.as_tensor(x, dtype=torch.float32)).squeeze(1)
        return torch.sigmoid(logits).numpy()

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        return evaluate_probabilities(y, self.predict(x))

    def validate(self) -> dict[str, float]:
        return evaluate_probabilities(self.val_y, self.predict(self.val_x))

    def head_inputs(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The last layer's inputs (the hidden activations, dropout off) and P(positive)."""
        rows = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        self.model.eval()
        with torch.no_grad(), torch_threads(self.threads):
            hidden = self.model[:-1](self.pool_x[rows])
            probs = torch.sigmoid(self.model[-1](hidden).squeeze(1))
        return hidden.numpy(), probs.numpy()

    def mc_probabilities(self, indices: np.ndarray, passes: int, seed: int) -> np.ndarray:
        rows = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        with torch_threads(self.threads):
            return module_probabilities(self.model, self.pool_x[rows], passes, seed)

    def snapshot(self) -> dict[str, torch.Tensor]:
        """A copy of the network's weights (the round's best state)."""
        return copy.deepcopy(self.model.state_dict())

    def restore(self, snapshot: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(snapshot)

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.model is None:
            self.reset(0)  # the architecture; every value is overwritten below
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
