"""The one training round against the original's early stopping, re-expressed here on its own:
LR drops, stops, the reference's reset and the epochs they happen at; the best state; resume."""

from __future__ import annotations

import copy
import itertools
import time
from typing import Any

import numpy as np
import pytest

from rfd_common.training_round import (
    Plateau,
    RoundConfig,
    RoundModel,
    RoundState,
    Step,
    train_round,
)


class OriginalEarlyStopping:
    """CS545 ``UniversalFakeDetect/earlystop.py``'s EarlyStopping (its checkpoint saving left
    out): no gain when ``score < best_score - delta``."""

    def __init__(self, patience: int, delta: float) -> None:
        self.patience, self.delta = patience, delta
        self.counter, self.best_score, self.early_stop = 0, None, False

    def __call__(self, score: float) -> None:
        if self.best_score is None:
            self.best_score = score
        elif score < self.best_score - self.delta:
            self.counter += 1
            if self.counter >= self.patience:
                self.early_stop = True
        else:
            self.best_score, self.counter = score, 0


def original_training(
    scores: list[float], patience: int, lr: float, min_lr: float, niter: int
) -> dict[str, Any]:
    """CS545 ``train.py``'s epoch loop, validating every epoch: the rate each epoch trained at,
    the stopper's best score after each epoch (until a stop), the epochs after which the rate
    was divided by 10 (``adjust_learning_rate``), and the epoch it stopped after (or None)."""
    stopper = OriginalEarlyStopping(patience, delta=-0.001)
    lrs, references, drops, stop = [], [], [], None
    for epoch in range(niter):
        lrs.append(lr)
        stopper(scores[epoch])
        if stopper.early_stop:
            lr /= 10.0
            drops.append(epoch + 1)
            if lr < min_lr:
                stop = epoch + 1
                break
            stopper = OriginalEarlyStopping(patience, delta=-0.002)
        references.append(stopper.best_score)
    return {"lrs": lrs, "references": references, "drops": drops, "stop": stop}


class ScriptedModel:
    """A round model whose validations follow a script; its "weights" are an epoch counter."""

    def __init__(self, accs: list[float], aps: list[float] | None = None, lr: float = 0.1):
        self.accs, self.aps = list(accs), list(accs if aps is None else aps)
        self.lr = lr
        self.trained = self.validations = 0
        self.epochs: list[dict[str, Any]] = []
        self.restores: list[int] = []

    def train_epoch(self, indices: Any, weights: Any, seed: int) -> float:
        self.epochs.append({"lr": self.lr, "seed": seed, "weights": weights, "indices": indices})
        self.trained += 1
        return 1.0 / self.trained

    def validate(self) -> dict[str, float]:
        at = self.validations
        self.validations += 1
        return {"acc": self.accs[at], "ap": self.aps[at]}

    def snapshot(self) -> int:
        return self.trained

    def restore(self, snapshot: int) -> None:
        self.trained = snapshot
        self.restores.append(snapshot)


def run(scores: list[float], patience: int, min_lr: float, lr: float = 0.1, **kwargs):
    """The round over ``scores`` (as acc): (result, model, reference after each epoch)."""
    model = ScriptedModel(scores, lr=lr)
    references: list[float | None] = []
    config = RoundConfig(epochs=len(scores), patience=patience, min_lr=min_lr)
    result = train_round(
        model,
        config,
        on_epoch=lambda state, report: references.append(state.plateau.reference),
        **kwargs,
    )
    return result, model, references


def assert_follows_the_original(scores: list[float], patience: int, min_lr: float) -> None:
    expected = original_training(scores, patience, 0.1, min_lr, len(scores))
    result, model, references = run(scores, patience, min_lr)
    assert [e["lr"] for e in model.epochs] == expected["lrs"]
    assert [r["lr"] for r in result.state.history] == expected["lrs"]
    assert result.epochs == len(expected["lrs"])
    assert result.stopped == (expected["stop"] is not None)
    assert result.lr_drops == len(expected["drops"])
    assert references[: len(expected["references"])] == expected["references"]
    # no restore at a drop; at the end, the round's best epoch (the first highest score)
    trained = scores[: result.epochs]
    best = int(np.argmax(trained)) + 1
    assert model.restores == ([] if best == result.epochs else [best])
    assert result.state.best_epoch == best
    assert result.validation["acc"] == max(trained)


SEQUENCES = {
    "ties are not gains": ([0.5] * 8, 2, 1e-4),
    "+0.001 gains before a drop, not after": (
        [0.5, 0.501, 0.502, 0.502, 0.502, 0.503, 0.504, 0.505, 0.506, 0.507],
        2,
        1e-4,
    ),
    "+0.001 after a drop is no gain, +0.002 is": (
        [0.6, 0.59, 0.58, 0.57, 0.571, 0.572, 0.574, 0.574, 0.575, 0.576],
        2,
        1e-4,
    ),
    "the first score after a drop sets the reference, even a worse one": (
        [0.9, 0.8, 0.5, 0.51, 0.6, 0.6, 0.6, 0.95],
        1,
        1e-5,
    ),
    "below the floor: stop": ([0.5, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4], 1, 0.005),
    "steady gains never drop": ([0.5 + 0.01 * i for i in range(8)], 1, 1e-4),
}


@pytest.mark.parametrize("name", SEQUENCES)
def test_lr_drops_stops_and_resets_follow_the_original(name: str) -> None:
    assert_follows_the_original(*SEQUENCES[name])


def test_random_sequences_follow_the_original() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        steps = rng.choice([-0.003, -0.001, 0.0, 0.0, 0.001, 0.002, 0.003], size=30)
        scores = np.round(0.6 + np.cumsum(steps), 3).tolist()
        patience = int(rng.integers(1, 4))
        assert_follows_the_original(scores, patience, float(rng.choice([1e-3, 1e-4, 1e-9])))


def test_the_epochs_of_the_events() -> None:
    # patience 2: ties at 0.5 -> drop after epoch 3; new stage from epoch 4 (0.5 sets it);
    # 0.501 is not 0.002 better -> drop after epoch 6; 0.001 / 10 < 5e-4 -> stop
    result, model, references = run([0.5, 0.5, 0.5, 0.5, 0.501, 0.5, 0.7], 2, 5e-4, lr=0.01)
    history = result.state.history
    drops = [r["epoch"] for r, nxt in itertools.pairwise(history) if nxt["lr"] < r["lr"]]
    assert drops == [3]
    assert result.stopped and result.epochs == 6 and result.lr_drops == 2
    assert references == [0.5, 0.5, None, 0.5, 0.5, None]
    assert model.lr == pytest.approx(1e-4) and model.restores == [5]  # the round's best


def test_a_drop_goes_on_from_the_current_weights_and_the_round_ends_in_its_best() -> None:
    # best at epoch 2; drops after epochs 3 and 5 train on from there (no restore)
    result, model, _ = run([0.5, 0.8, 0.7, 0.6, 0.5, 0.4], 1, 1e-6)
    assert [e["lr"] for e in model.epochs] == pytest.approx([0.1, 0.1, 0.1, 0.01, 0.01, 0.001])
    assert model.restores == [2] and model.trained == 2
    assert result.validation == {"acc": 0.8, "ap": 0.8} and result.state.best_epoch == 2


def test_the_metric_is_acc_by_default_and_ap_on_request() -> None:
    accs, aps = [0.5, 0.9, 0.6], [0.9, 0.5, 0.6]
    model = ScriptedModel(accs, aps)
    result = train_round(model, RoundConfig(epochs=3, patience=5))
    assert result.state.best_epoch == 2 and model.restores == [2]
    model = ScriptedModel(accs, aps)
    result = train_round(model, RoundConfig(epochs=3, patience=5, metric="ap"))
    assert result.state.best_epoch == 1 and result.validation == {"acc": 0.5, "ap": 0.9}


def test_without_early_stopping_every_epoch_trains_and_the_last_state_stays() -> None:
    model = ScriptedModel([0.7])
    result = train_round(model, RoundConfig(epochs=4, patience=0))
    assert model.trained == 4 and model.validations == 1 and model.restores == []
    assert result.validation["acc"] == 0.7 and result.lr_drops == 0


def test_no_epoch_validates_once() -> None:
    model = ScriptedModel([0.3])
    result = train_round(model, RoundConfig(epochs=0, patience=2))
    assert result.epochs == 0 and result.loss is None and result.validation["acc"] == 0.3


def test_weights_decay_at_every_epoch_but_the_first() -> None:
    model = ScriptedModel([0.5] * 3)
    weights = np.array([1.0, 8.0])
    result = train_round(
        model,
        RoundConfig(epochs=3, patience=0),
        np.array([4, 7]),
        weights,
        epoch_seed=lambda epoch: 100 + epoch,
        reweight=lambda w: np.maximum(w * 0.5, 1.0),
    )
    assert [e["weights"].tolist() for e in model.epochs] == [[1, 8], [1, 4], [1, 2]]
    assert [e["seed"] for e in model.epochs] == [100, 101, 102]
    assert result.weights.tolist() == [1, 2] and weights.tolist() == [1, 8]  # input untouched


class KilledError(Exception):
    pass


def test_a_round_continued_from_its_state_ends_as_an_uninterrupted_one() -> None:
    scores = [0.5, 0.6, 0.6, 0.55, 0.58, 0.7, 0.69, 0.7, 0.5]
    config = RoundConfig(epochs=len(scores), patience=2, min_lr=1e-9)
    kwargs = {"reweight": lambda w: np.maximum(w * 0.9, 1.0), "epoch_seed": lambda e: e}
    whole_model = ScriptedModel(scores)
    whole = train_round(whole_model, config, None, np.array([5.0, 1.0]), **kwargs)

    saved: dict[str, Any] = {}

    def save_then_die(state: RoundState, report) -> None:
        model_state = (model.trained, model.validations, model.lr)
        saved.update(round=copy.deepcopy(state.to_dict()), model=model_state)
        if state.epoch == 5:
            raise KilledError

    model = ScriptedModel(scores)
    with pytest.raises(KilledError):
        train_round(model, config, None, np.array([5.0, 1.0]), on_epoch=save_then_die, **kwargs)
    fresh = ScriptedModel(scores)
    fresh.trained, fresh.validations, fresh.lr = saved["model"]
    state = RoundState.from_dict(saved["round"])
    resumed = train_round(fresh, config, None, np.array([5.0, 1.0]), state=state, **kwargs)

    def plain(epochs: list[dict[str, Any]]) -> list[tuple]:
        return [(e["lr"], e["seed"], e["weights"].tolist()) for e in epochs]

    assert plain(whole_model.epochs[5:]) == plain(fresh.epochs)  # rates, seeds, weights
    for key in ("validation", "epochs", "lr_drops", "loss", "stopped"):
        assert getattr(resumed, key) == getattr(whole, key), key
    assert resumed.weights.tolist() == whole.weights.tolist()
    assert fresh.trained == whole_model.trained and fresh.lr == whole_model.lr


def test_plateau_steps() -> None:
    plateau = Plateau(patience=2)
    steps = [plateau.step(s) for s in (0.5, 0.5, 0.5, 0.4, 0.401, 0.402, 0.403)]
    assert steps == [Step.GAIN, Step.WAIT, Step.DROP, Step.GAIN, Step.WAIT, Step.GAIN, Step.WAIT]
    assert plateau.drops == 1 and plateau.reference == 0.402


def test_configuration_and_validation_errors() -> None:
    with pytest.raises(ValueError, match="metric"):
        RoundConfig(epochs=1, metric="loss")
    with pytest.raises(ValueError, match="patience"):
        RoundConfig(epochs=1, patience=-1)

    class NoAP(ScriptedModel):
        def validate(self) -> dict[str, float]:
            return {"acc": 0.5}

    with pytest.raises(KeyError, match="ap"):
        train_round(NoAP([0.5]), RoundConfig(epochs=1, patience=1))
    assert isinstance(ScriptedModel([0.5]), RoundModel)


class SlowValidation(ScriptedModel):
    """Validation takes measurable time; training takes none."""

    def validate(self) -> dict[str, float]:
        time.sleep(0.02)
        return super().validate()


@pytest.mark.parametrize("patience", [0, 2])
def test_the_round_says_how_long_it_validated(patience: int) -> None:
    """Validated once (patience 0) or after each of 3 epochs: the validation time is counted
    apart from the round's training time, and a continued round counts only its own."""
    model = SlowValidation([0.5, 0.6, 0.7])
    result = train_round(model, RoundConfig(epochs=3, patience=patience))
    validations = 1 if patience == 0 else 3
    assert model.validations == validations
    assert result.validation_seconds >= 0.02 * validations
    assert result.validation_seconds <= result.seconds
    assert result.training_seconds == pytest.approx(result.seconds - result.validation_seconds)
    before = result.state.validation_seconds
    again = train_round(model, RoundConfig(epochs=3, patience=patience), state=result.state)
    # nothing left to train: validated again without early stopping, else the best kept
    assert model.validations == validations + (patience == 0)
    assert (again.validation_seconds >= 0.02) == (patience == 0)
    assert again.state.validation_seconds == pytest.approx(before + again.validation_seconds)
