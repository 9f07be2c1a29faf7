"""The loop: initial set, early stopping with LR drops, weights, queries, results, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
import torch

from active_learning.acquisition import get_acquisition
from active_learning.config import ALConfig, ConfigError
from active_learning.learner import Learner
from active_learning.loop import (
    STATE_FILE,
    Purpose,
    derive_seed,
    initial_indices,
    query,
    run_active_learning,
    train_iteration,
)
from active_learning.mlp_learner import MLPLearner
from active_learning.results import CURVE_PNG, HISTORY_CSV, RESULTS_JSON
from tests.rfd_common.test_training_round import OriginalEarlyStopping

from .conftest import ScriptedLearner

REPO = Path(__file__).resolve().parents[2]


def test_initial_set_is_balanced_without_replacement() -> None:
    labels = np.array([0] * 6 + [1] * 4)
    chosen = initial_indices(labels, 3, np.random.default_rng(0))
    assert chosen.size == 6 and np.unique(chosen).size == 6
    np.testing.assert_array_equal(np.bincount(labels[chosen]), [3, 3])
    everything = initial_indices(labels, 4, np.random.default_rng(0))
    np.testing.assert_array_equal(np.sort(everything[4:]), [6, 7, 8, 9])  # all of class 1
    with pytest.raises(ConfigError, match="only 4 images of class 1"):
        initial_indices(labels, 5, np.random.default_rng(0))


def test_seeds_differ_by_purpose_iteration_and_epoch() -> None:
    seeds = {
        derive_seed(0, purpose, it, ep) for purpose in Purpose for it in range(3) for ep in range(3)
    }
    assert len(seeds) == len(Purpose) * 9
    assert derive_seed(0, Purpose.TRAIN, 1, 2) == derive_seed(0, Purpose.TRAIN, 1, 2)
    assert derive_seed(0, Purpose.TRAIN) != derive_seed(1, Purpose.TRAIN)


def test_scripted_learner_satisfies_the_protocol(digits) -> None:
    assert isinstance(ScriptedLearner(4), Learner)
    assert isinstance(MLPLearner(digits.pool_x, digits.pool_y, digits.val_x, digits.val_y), Learner)


def round_config(**changes) -> ALConfig:
    """Early stopping with patience in epochs (each round on its own)."""
    base = dict(earlystop_epoch=2, al_earlystop_metric="acc", min_lr=1e-3, earlystop_delta=0.001,
                al_patience_unit="epoch")  # fmt: skip
    return ALConfig(**{**base, **changes})


def test_early_stopping_drops_lr_without_restoring_and_ends_in_the_best() -> None:
    # epoch:  1     2     3     4     5     6     7
    accs = [0.50, 0.60, 0.60, 0.55, 0.70, 0.69, 0.65]
    learner = ScriptedLearner(10, accs)
    learner.reset(0)
    outcome = train_iteration(learner, np.arange(4), np.ones(4), 7, round_config(), 0.1, 1)
    lrs = [e["lr"] for e in learner.epochs]
    # epochs 3 (a tie) and 4 gain nothing on 0.60: LR / 10, training goes on from epoch 4's
    # state; 0.70 sets the new stage's reference; 6 and 7 gain nothing: LR / 10 again
    # (0.001 is not below min_lr 1e-3)
    assert lrs == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01])
    assert learner.restores == [5]  # never at a drop; at the end, the best epoch's state
    assert outcome.lr_drops == 2 and outcome.epochs == 7
    assert outcome.validation["acc"] == 0.70  # the round reports, and keeps, its best


def test_round_stops_when_lr_falls_below_the_floor() -> None:
    learner = ScriptedLearner(10, [0.5, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4])
    learner.reset(0)
    config = round_config(earlystop_epoch=1, min_lr=0.005)
    outcome = train_iteration(learner, np.arange(4), np.ones(4), 8, config, 0.1, 1)
    # drop after epoch 2 (lr 0.01); epoch 3 sets the new stage's reference; epoch 4 ties it:
    # drop (0.001 < 0.005): stop
    assert outcome.epochs == 4 and outcome.lr_drops == 2 and outcome.stopped
    assert learner.restores == [1] and learner.trained == 1


def test_round_restores_the_best_state_at_the_end() -> None:
    learner = ScriptedLearner(10, [0.5, 0.8, 0.7])
    learner.reset(0)
    outcome = train_iteration(learner, np.arange(4), np.ones(4), 3, round_config(), 0.1, 1)
    assert learner.restores == [2] and outcome.validation["acc"] == 0.8


def test_no_early_stopping_validates_once() -> None:
    learner = ScriptedLearner(10, [0.9])
    learner.reset(0)
    config = round_config(earlystop_epoch=0)
    outcome = train_iteration(learner, np.arange(4), np.ones(4), 5, config, 0.1, 1)
    assert learner.validations == 1 and outcome.epochs == 5 and learner.restores == []


def test_with_patience_in_epochs_every_round_starts_at_the_full_rate() -> None:
    accs = [0.5, 0.4, 0.3, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]  # warm-up: drop after epoch 2
    learner, result = scripted_run(accs=accs, al_patience_unit="epoch", earlystop_epoch=1,
                                   min_lr=1e-6)  # fmt: skip
    lrs = [e["lr"] for e in learner.epochs]
    assert lrs[:2] == [0.1, 0.1] and lrs[2] == 0.1  # iteration 1 starts at the full rate
    assert result.history[0]["lr_drops"] == 1 and result.history[0]["val_acc"] == 0.5


def original_al_procedure(
    scores: list[float], patience: int, lr: float, min_lr: float
) -> tuple[list[float], int | None]:
    """CS545 ``active_learning_net.py``: one score per iteration (after its training; the
    EarlyStopping is made after the warm-up), the rate / 10 at a trigger, break below the floor.
    Returns the rate each iteration trained at and the iteration it stopped after (or None)."""
    stopper = OriginalEarlyStopping(patience, delta=-0.001)
    lrs, stop = [], None
    for index, score in enumerate(scores):
        lrs.append(lr)
        stopper(score)
        if stopper.early_stop:
            lr /= 10.0
            if lr < min_lr:
                stop = index + 1
                break
            stopper = OriginalEarlyStopping(patience, delta=-0.002)
    return lrs, stop


# warm-up (not counted), then iterations 1-12: 2 and 3 gain nothing on 0.5 (drop), 4 sets the
# new stage's reference, 5 (+0.001) and 6 gain nothing (drop), 7 sets it, 8 gains (+0.003),
# 9 and 10 gain nothing: the third drop takes the rate below the floor after iteration 10
ITERATION_SCORES = [0.9, 0.5, 0.5, 0.5005, 0.49, 0.491, 0.4915, 0.6, 0.603, 0.603, 0.6, 0.6, 0.6]
ITERATION_RUN = dict(al_patience_unit="iteration", earlystop_epoch=2, al_iter=12, query=3,
                     min_lr=1e-3, al_niter_warmup=2, niter=3)  # fmt: skip


def test_patience_in_iterations_follows_cs545(tmp_path: Path) -> None:
    warm_up, scores = ITERATION_SCORES[0], ITERATION_SCORES[1:]
    expected_lrs, stop = original_al_procedure(scores, 2, 0.1, 1e-3)
    assert stop == 10  # the run ends early
    assert original_al_procedure([warm_up, *scores], 2, 0.1, 1e-3)[0] != [0.1, *expected_lrs]
    learner, result = scripted_run(tmp_path, accs=ITERATION_SCORES, **ITERATION_RUN)
    assert len(result.history) == 1 + stop
    # rounds train every epoch at the loop's rate, are validated once and never restored
    lrs = [e["lr"] for e in learner.epochs]
    assert lrs[:2] == [0.1, 0.1]
    assert [lrs[2 + 3 * i : 5 + 3 * i] for i in range(stop)] == [[lr] * 3 for lr in expected_lrs]
    assert learner.validations == 1 + stop and learner.restores == []
    assert [r["stopped_early"] for r in result.history] == [False] * stop + [True]
    assert sum(r["lr_drops"] for r in result.history) == 3
    assert json.loads((tmp_path / RESULTS_JSON).read_text())["stopped_early"] is True


def test_patience_in_iterations_survives_a_resume(tmp_path: Path) -> None:
    _, whole = scripted_run(accs=ITERATION_SCORES, **ITERATION_RUN)

    def die_at_5(record, learner):  # after the first drop (iteration 3), before the second
        if record.iteration == 5:
            raise KilledError

    labels = np.array([0, 1] * 20)
    config = ALConfig(**{**SCRIPTED_RUN, **ITERATION_RUN})
    with pytest.raises(KilledError):
        run_active_learning(ScriptedLearner(40, ITERATION_SCORES), labels, config, tmp_path,
                            log=None, on_iteration=die_at_5)  # fmt: skip
    learner = ScriptedLearner(40, ITERATION_SCORES)
    resumed = run_active_learning(learner, labels, config, tmp_path, log=None)
    assert comparable(resumed.history) == comparable(whole.history)
    assert learner.epochs[0]["lr"] == pytest.approx(0.01)  # the dropped rate came back
    # a run that stopped early stays stopped, even with more iterations allowed
    more = ALConfig(**{**SCRIPTED_RUN, **ITERATION_RUN, "al_iter": 20})
    again = ScriptedLearner(40, ITERATION_SCORES)
    repeat = run_active_learning(again, labels, more, tmp_path, log=None)
    assert again.epochs == [] and comparable(repeat.history) == comparable(whole.history)


SCRIPTED_RUN = dict(num_samples_per_class=2, query=3, al_iter=2, al_niter_warmup=2, niter=3,
                    earlystop_epoch=0, subsample_size=0)  # fmt: skip


def scripted_run(
    tmp_path: Path | None = None, probs=None, accs: Iterable[float] = (), **changes
) -> tuple[ScriptedLearner, object]:
    labels = np.array([0, 1] * 20)
    learner = ScriptedLearner(labels.size, accs, probs=probs)
    config = ALConfig(**{**SCRIPTED_RUN, **changes})
    result = run_active_learning(learner, labels, config, tmp_path, log=None)
    return learner, result


def test_weighted_loss_weights_and_decay_per_epoch() -> None:
    decay = 0.5
    learner, result = scripted_run(use_weighted_loss=True, weighted_loss_decay=decay)
    epochs = learner.epochs
    assert len(epochs) == 2 + 3 + 3
    # warm-up: the four initial samples weigh 1 in both epochs
    for e in epochs[:2]:
        np.testing.assert_array_equal(e["weights"], np.ones(4))
    # iteration 1: three new samples with w^3 over their scores; first epoch undecayed
    new = epochs[2]["indices"][4:]
    scores = _max_entropy_of(learner, new)
    w3 = (scores - min(scores.min(), 0.1)) / (scores.max() - min(scores.min(), 0.1)) + 1
    np.testing.assert_allclose(epochs[2]["weights"], np.r_[np.ones(4), w3**3])
    np.testing.assert_allclose(epochs[3]["weights"], np.maximum(epochs[2]["weights"] * decay, 1))
    np.testing.assert_allclose(epochs[4]["weights"], np.maximum(epochs[3]["weights"] * decay, 1))
    # iteration 2: the first epoch of the round is not decayed; the new ones get w^3 again
    np.testing.assert_allclose(epochs[5]["weights"][:7], epochs[4]["weights"])
    assert epochs[5]["weights"][7:].max() == pytest.approx(8.0)
    assert (epochs[7]["weights"] >= 1).all()
    np.testing.assert_allclose(result.weights, epochs[7]["weights"])


def _max_entropy_of(learner: ScriptedLearner, indices: np.ndarray) -> np.ndarray:
    p = learner.mc_probabilities(indices, 10, 0).mean(axis=0)
    return -(p * np.log(p) + (1 - p) * np.log(1 - p))


def test_without_weighted_loss_all_weights_are_one() -> None:
    learner, _ = scripted_run()
    assert all((e["weights"] == 1).all() for e in learner.epochs)


class IdenticalPassesLearner(ScriptedLearner):
    """Every MC-dropout pass gives the same probabilities: no uncertainty anywhere."""

    def mc_probabilities(self, indices: np.ndarray, passes: int, seed: int) -> np.ndarray:
        return np.tile(self.pool_probs[indices], (passes, 1))


@pytest.mark.parametrize("acq_func", ["bald", "mean_std"])
def test_identical_passes_give_every_queried_sample_weight_1(acq_func: str) -> None:
    labels = np.array([0, 1] * 20)
    learner = IdenticalPassesLearner(labels.size, probs=np.random.default_rng(1).random(40))
    config = ALConfig(
        acq_func=acq_func, use_weighted_loss=True, num_samples_per_class=2, query=5, al_iter=3,
        al_niter_warmup=1, niter=1, earlystop_epoch=0, subsample_size=0,
    )  # fmt: skip
    result = run_active_learning(learner, labels, config, log=None)
    assert result.labelled.size == 19
    # plain scores zero up to round-off: w = 1, so w^3 = 1 for every queried sample
    np.testing.assert_array_equal(result.weights, np.ones(19))


def test_query_takes_the_most_uncertain_and_balances() -> None:
    # scripted probabilities rise with the index; the most uncertain are those nearest 0.5
    probs = np.linspace(0.02, 0.7, 40)
    learner, result = scripted_run(probs=probs, acq_func="max_entropy", al_iter=1)
    labels = np.array([0, 1] * 20)
    new = result.labelled[4:]
    p = learner.pool_probs
    free = np.setdiff1d(np.arange(40), result.labelled[:4])
    entropy = -(p * np.log(p) + (1 - p) * np.log(1 - p))
    expected = free[np.argsort(-entropy[free], kind="stable")][:3]
    assert set(new) == set(expected)
    learner, result = scripted_run(
        probs=probs, acq_func="max_entropy", al_iter=1, balance_acquisition=True
    )
    new = result.labelled[4:]
    counts = np.bincount(labels[new], minlength=2)
    assert sorted(counts) == [1, 2]
    for c in (0, 1):  # each class's share is its most uncertain free candidates
        members = free[labels[free] == c]
        best = members[np.argsort(-entropy[members], kind="stable")][: counts[c]]
        assert set(new[labels[new] == c]) == set(best)


def test_pool_exhaustion_stops_cleanly() -> None:
    _, result = scripted_run(al_iter=30, query=10)
    assert result.labelled.size == 40 and np.unique(result.labelled).size == 40
    assert result.history[-1]["labelled"] == 40


def test_results_are_written_and_say_simulation(tmp_path: Path) -> None:
    scripted_run(tmp_path, acq_func="loss_weighted_bald", balance_acquisition=True)
    assert {RESULTS_JSON, HISTORY_CSV, CURVE_PNG, STATE_FILE} <= {
        p.name for p in tmp_path.iterdir()
    }
    run = json.loads((tmp_path / RESULTS_JSON).read_text())
    assert run["simulation_only"] is True and len(run["true_label_uses"]) == 2
    assert "simulation" in run["note"]
    assert [r["labelled"] for r in run["history"]] == [4, 7, 10]
    first = run["history"][1]
    assert first["labelled_real"] + first["labelled_fake"] == 7 and first["queried"] == 3
    assert run["history"][0]["query_seconds"] == 0.0  # iteration 0 queries nothing
    assert first["query_seconds"] > 0 and first["train_seconds"] > 0
    rows = (tmp_path / HISTORY_CSV).read_text().splitlines()
    assert rows[0].startswith("iteration,labelled,labelled_real,labelled_fake,queried,val_acc")
    assert len(rows) == 4
    assert (tmp_path / CURVE_PNG).read_bytes()[:4] == b"\x89PNG"


def test_label_free_run_is_not_simulation(tmp_path: Path) -> None:
    scripted_run(tmp_path, acq_func="9", balance_acquisition=True, label_free=True)
    run = json.loads((tmp_path / RESULTS_JSON).read_text())
    assert run["simulation_only"] is False and run["true_label_uses"] == []


def test_hook_extras_are_recorded(tmp_path: Path) -> None:
    labels = np.array([0, 1] * 20)
    config = ALConfig(num_samples_per_class=2, query=3, al_iter=1, al_niter_warmup=1, niter=1)
    result = run_active_learning(
        ScriptedLearner(40), labels, config, tmp_path, log=None,
        on_iteration=lambda record, learner: {"test_acc": np.float32(0.25) + record.iteration},
    )  # fmt: skip
    assert [r["extra"]["test_acc"] for r in result.history] == [0.25, 1.25]
    assert "test_acc" in (tmp_path / HISTORY_CSV).read_text().splitlines()[0]


class TimedLearner(ScriptedLearner):
    """Training, validation and MC-dropout passes take known times."""

    def train_epoch(self, indices: np.ndarray, weights: np.ndarray, seed: int) -> float:
        time.sleep(0.01)
        return super().train_epoch(indices, weights, seed)

    def validate(self) -> dict[str, float]:
        time.sleep(0.005)
        return super().validate()

    def mc_probabilities(self, indices: np.ndarray, passes: int, seed: int) -> np.ndarray:
        time.sleep(0.003)
        return super().mc_probabilities(indices, passes, seed)


def test_the_run_records_its_time_per_phase(tmp_path: Path) -> None:
    labels = np.array([0, 1] * 20)
    config = ALConfig(num_samples_per_class=2, query=3, al_iter=2, al_niter_warmup=2, niter=1)
    result = run_active_learning(TimedLearner(40), labels, config, tmp_path, log=None)
    timings = result.timings
    assert set(timings) == {"setup", "training", "queries", "validation", "saving"}
    assert timings["training"] >= 0.01 * 4  # 2 warm-up epochs, then 1 per iteration
    assert timings["validation"] >= 0.005 * 3 and timings["queries"] >= 0.003 * 2
    history = result.history
    for phase, key in (("training", "train"), ("validation", "validate"), ("queries", "query")):
        assert sum(r[f"{key}_seconds"] for r in history) == pytest.approx(timings[phase])
    assert all(r["train_seconds"] >= 0.01 and r["validate_seconds"] >= 0.005 for r in history)
    saved = json.loads((tmp_path / RESULTS_JSON).read_text())["phase_seconds"]
    assert set(saved) == set(timings) and saved["training"] > 0
    assert "validate_seconds" in (tmp_path / HISTORY_CSV).read_text().splitlines()[0]


# --- resume ----------------------------------------------------------------------------------

DIGITS_CONFIG = dict(
    acq_func="bald",
    num_samples_per_class=5,
    query=7,
    al_iter=4,
    al_niter_warmup=6,
    niter=4,
    earlystop_epoch=2,
    al_patience_unit="epoch",  # early stopping inside the rounds: best states, restores
    use_weighted_loss=True,
    weighted_loss_decay=0.8,
    balance_acquisition=True,
    subsample_size=300,
    seed=3,
)


def digits_learner(task) -> MLPLearner:
    return MLPLearner(task.pool_x, task.pool_y, task.val_x, task.val_y)


def comparable(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.endswith("_seconds")} for r in history]


@pytest.fixture(scope="module")
def uninterrupted(digits, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    learner = digits_learner(digits)
    result = run_active_learning(learner, digits.pool_y, ALConfig(**DIGITS_CONFIG), out, log=None)
    return result, learner.state_dict()


class KilledError(Exception):
    pass


class DyingLearner(MLPLearner):
    """Raises in its n-th training epoch, as if the process were killed mid-round."""

    def __init__(self, task, die_at_epoch: int) -> None:
        super().__init__(task.pool_x, task.pool_y, task.val_x, task.val_y)
        self.die_at, self.calls = die_at_epoch, 0

    def train_epoch(self, indices, weights, seed) -> float:
        self.calls += 1
        if self.calls == self.die_at:
            raise KilledError
        return super().train_epoch(indices, weights, seed)


def assert_same_run(result, learner_state, reference) -> None:
    ref_result, ref_state = reference
    np.testing.assert_array_equal(result.labelled, ref_result.labelled)
    np.testing.assert_array_equal(result.weights, ref_result.weights)
    assert comparable(result.history) == comparable(ref_result.history)
    for key, tensor in ref_state["model"].items():
        assert torch.equal(learner_state["model"][key], tensor), key


def test_uninterrupted_run_is_sane(uninterrupted, digits) -> None:
    result, _ = uninterrupted
    assert result.labelled.size == 10 + 4 * 7 and np.unique(result.labelled).size == 38
    assert [r["iteration"] for r in result.history] == [0, 1, 2, 3, 4]
    assert result.history[-1]["val_acc"] > 0.7
    assert result.weights.max() > 1  # weighted loss in use


def test_resume_after_a_crash_mid_round(uninterrupted, digits, tmp_path: Path) -> None:
    config = ALConfig(**DIGITS_CONFIG)
    with pytest.raises(KilledError):  # epoch 6 + 4 + 3: inside iteration 2's training
        run_active_learning(DyingLearner(digits, 13), digits.pool_y, config, tmp_path, log=None)
    saved = torch.load(tmp_path / STATE_FILE, weights_only=True)
    assert saved["iteration"] == 1
    learner = digits_learner(digits)
    result = run_active_learning(learner, digits.pool_y, config, tmp_path, log=None)
    assert_same_run(result, learner.state_dict(), uninterrupted)
    run = json.loads((tmp_path / RESULTS_JSON).read_text())
    assert comparable(run["history"]) == comparable(uninterrupted[0].history)


def test_resume_after_a_crash_in_the_hook(uninterrupted, digits, tmp_path: Path) -> None:
    config = ALConfig(**DIGITS_CONFIG)

    def hook(record, learner):
        if record.iteration == 3:
            raise KilledError

    with pytest.raises(KilledError):
        run_active_learning(
            digits_learner(digits), digits.pool_y, config, tmp_path, log=None, on_iteration=hook
        )
    learner = digits_learner(digits)
    result = run_active_learning(learner, digits.pool_y, config, tmp_path, log=None)
    assert_same_run(result, learner.state_dict(), uninterrupted)
    # a finished run resumes to itself without training
    again = digits_learner(digits)
    repeat = run_active_learning(again, digits.pool_y, config, tmp_path, log=None)
    assert_same_run(repeat, again.state_dict(), uninterrupted)


def test_resume_refuses_another_configuration(uninterrupted, digits, tmp_path: Path) -> None:
    config = ALConfig(**{**DIGITS_CONFIG, "al_iter": 1})
    run_active_learning(digits_learner(digits), digits.pool_y, config, tmp_path, log=None)
    other = ALConfig(**{**DIGITS_CONFIG, "al_iter": 1, "query": 8})
    with pytest.raises(ConfigError, match="query=7"):
        run_active_learning(digits_learner(digits), digits.pool_y, other, tmp_path, log=None)
    with pytest.raises(ConfigError, match="another pool"):
        run_active_learning(digits_learner(digits), 1 - digits.pool_y, config, tmp_path, log=None)
    # more iterations than before: continues the saved run to the uninterrupted result
    longer = ALConfig(**DIGITS_CONFIG)
    learner = digits_learner(digits)
    result = run_active_learning(learner, digits.pool_y, longer, tmp_path, log=None)
    assert_same_run(result, learner.state_dict(), uninterrupted)


def test_a_run_that_does_not_write_resumes_from_the_writers_state(
    uninterrupted, digits, tmp_path: Path
) -> None:
    """The ranks but 0 under torchrun: they read the state rank 0 wrote and write nothing."""
    short = ALConfig(**{**DIGITS_CONFIG, "al_iter": 1})
    run_active_learning(digits_learner(digits), digits.pool_y, short, tmp_path, log=None)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    learner = digits_learner(digits)
    config = ALConfig(**DIGITS_CONFIG)
    result = run_active_learning(learner, digits.pool_y, config, tmp_path, log=None, writes=False)
    assert_same_run(result, learner.state_dict(), uninterrupted)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert result.results_json is None
    fresh = tmp_path / "fresh"
    run_active_learning(digits_learner(digits), digits.pool_y, short, fresh, log=None, writes=False)
    assert not fresh.exists()


CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from active_learning.config import ALConfig
    from active_learning.loop import run_active_learning
    from active_learning.mlp_learner import MLPLearner, digits_task

    task = digits_task(seed=0)
    learner = MLPLearner(task.pool_x, task.pool_y, task.val_x, task.val_y)

    def hook(record, learner):
        if record.iteration == 2:
            os.kill(os.getpid(), signal.SIGKILL)

    config = ALConfig(**{config!r})
    run_active_learning(learner, task.pool_y, config, sys.argv[1], on_iteration=hook, log=None)
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_resume_after_sigkill(uninterrupted, digits, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.run(
        [sys.executable, "-c", CHILD.format(config=DIGITS_CONFIG), str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert torch.load(tmp_path / STATE_FILE, weights_only=True)["iteration"] == 1
    learner = digits_learner(digits)
    result = run_active_learning(
        learner, digits.pool_y, ALConfig(**DIGITS_CONFIG), tmp_path, log=None
    )
    assert_same_run(result, learner.state_dict(), uninterrupted)


def test_resume_false_starts_over(digits, tmp_path: Path) -> None:
    config = ALConfig(**{**DIGITS_CONFIG, "al_iter": 1})
    run_active_learning(digits_learner(digits), digits.pool_y, config, tmp_path, log=None)
    other = ALConfig(**{**DIGITS_CONFIG, "al_iter": 1, "query": 3})
    result = run_active_learning(
        digits_learner(digits), digits.pool_y, other, tmp_path, log=None, resume=False
    )
    assert result.labelled.size == 13


@pytest.mark.parametrize("label_free", [True, False])
def test_label_free_selection_never_reads_pool_labels(label_free: bool) -> None:
    labels = np.array([0, 1] * 20)
    labelled = np.array([0, 1, 2, 3])
    config = ALConfig(
        acq_func="loss_weighted_max_entropy", balance_acquisition=True, label_free=label_free,
        query=6, subsample_size=0,
    )  # fmt: skip
    acquisition = get_acquisition(config.acq_func)
    learner = ScriptedLearner(40, probs=np.linspace(0.02, 0.98, 40))
    first = query(learner, labels, labelled, config, acquisition, 1).indices
    scrambled = labels.copy()
    scrambled[4:] = np.random.default_rng(0).integers(0, 2, 36)  # labels nobody knows yet
    second = query(learner, scrambled, labelled, config, acquisition, 1).indices
    assert np.array_equal(first, second) == label_free  # with true labels, queries follow them


# --- unreadable pool items -------------------------------------------------------------------


class NaNLearner(ScriptedLearner):
    """Pool items in ``bad`` cannot be read: their MC-dropout probabilities are NaN, as NaN
    cached features make them. Records every item it was asked to score."""

    def __init__(self, pool_size: int, bad: Iterable[int]) -> None:
        super().__init__(pool_size)
        self.bad = np.zeros(pool_size, dtype=bool)
        self.bad[list(bad)] = True
        self.scored: list[int] = []

    def mc_probabilities(self, indices: np.ndarray, passes: int, seed: int) -> np.ndarray:
        self.scored += np.asarray(indices).tolist()
        probs = super().mc_probabilities(indices, passes, seed)
        probs[:, self.bad[indices]] = np.nan
        return probs


class UnreadableLearner(NaNLearner):
    """A :class:`NaNLearner` that says which items it cannot read."""

    def unreadable_items(self, indices: np.ndarray) -> np.ndarray:
        return self.bad[np.asarray(indices)]


UNREADABLE_CONFIG = dict(
    acq_func="loss_weighted_mean_std", balance_acquisition=True, use_weighted_loss=True,
    num_samples_per_class=2, query=3, al_iter=20, al_niter_warmup=1, niter=1,
    earlystop_epoch=0, subsample_size=0,
)  # fmt: skip


def test_unreadable_items_are_never_drawn_scored_or_labelled(tmp_path: Path) -> None:
    labels = np.array([0, 1] * 20)
    # what the seed draws without unreadable items: make two of those draws unreadable (the
    # class-0 one is met by the same first draw; later draws differ once one is replaced)
    clean = initial_indices(labels, 2, np.random.default_rng(derive_seed(0, Purpose.INITIAL_SET)))
    bad = sorted({int(clean[0]), int(clean[2]), 5, 10, 33})
    learner = UnreadableLearner(labels.size, bad)
    config = ALConfig(**UNREADABLE_CONFIG)
    result = run_active_learning(learner, labels, config, tmp_path, log=None)

    initial = result.labelled[:4]
    np.testing.assert_array_equal(np.bincount(labels[initial]), [2, 2])  # still balanced
    assert not set(initial.tolist()) & set(bad)
    assert not set(learner.scored) & set(bad)  # never MC-dropout passed, so never scored
    assert all(not set(e["indices"].tolist()) & set(bad) for e in learner.epochs)
    # the loop ran until the pool was exhausted: every readable item, no unreadable one
    assert sorted(result.labelled.tolist()) == sorted(set(range(40)) - set(bad))
    assert result.unreadable.tolist() == bad
    run = json.loads((tmp_path / RESULTS_JSON).read_text())
    assert run["unreadable_pool_images"] == 5 and run["unreadable_pool_indices"] == bad
    counts = [r["unreadable"] for r in run["history"]]
    assert counts[0] >= 1 and counts[-1] == 5 and counts == sorted(counts)
    rows = (tmp_path / HISTORY_CSV).read_text().splitlines()
    assert rows[0].endswith(",unreadable") and rows[-1].endswith(",5")
    saved = torch.load(tmp_path / STATE_FILE, weights_only=True)
    assert saved["excluded"].tolist() == bad


def test_unreadable_items_survive_a_resume(tmp_path: Path) -> None:
    labels = np.array([0, 1] * 20)
    clean = initial_indices(labels, 2, np.random.default_rng(derive_seed(0, Purpose.INITIAL_SET)))
    bad = sorted({int(clean[1]), 7, 21})
    whole = run_active_learning(
        UnreadableLearner(40, bad), labels, ALConfig(**UNREADABLE_CONFIG), log=None
    )
    short = ALConfig(**{**UNREADABLE_CONFIG, "al_iter": 2})
    run_active_learning(UnreadableLearner(40, bad), labels, short, tmp_path, log=None)
    resumed = run_active_learning(
        UnreadableLearner(40, bad), labels, ALConfig(**UNREADABLE_CONFIG), tmp_path, log=None
    )
    np.testing.assert_array_equal(resumed.labelled, whole.labelled)
    assert resumed.unreadable.tolist() == whole.unreadable.tolist() == sorted(bad)


def test_too_few_readable_items_for_the_initial_set() -> None:
    labels = np.array([0, 1] * 5)
    learner = UnreadableLearner(10, [1, 3, 5, 7])  # one readable fake left
    config = ALConfig(**{**UNREADABLE_CONFIG, "num_samples_per_class": 2})
    with pytest.raises(ConfigError, match=r"only 1 readable images of class 1 \(4 unreadable"):
        run_active_learning(learner, labels, config, log=None)


def test_nan_probabilities_of_unreported_items_are_an_error() -> None:
    labels = np.array([0, 1] * 20)
    learner = NaNLearner(40, range(4, 40))  # NaN for every candidate, but nothing reported
    with pytest.raises(ValueError, match=r"non-finite probabilities.*unreadable_items"):
        run_active_learning(learner, labels, ALConfig(**UNREADABLE_CONFIG), log=None)


class ChunkedLearner(ScriptedLearner):
    """A scripted learner that declares per-item probabilities, so the loop asks in chunks;
    it records the size of every request."""

    per_item_probabilities = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.asked: list[int] = []

    def mc_probabilities(self, indices: np.ndarray, passes: int, seed: int) -> np.ndarray:
        self.asked.append(len(indices))
        return super().mc_probabilities(indices, passes, seed)


@pytest.mark.parametrize(
    "changes",
    [
        dict(acq_func="loss_weighted_bald", balance_acquisition=True),
        dict(acq_func="var_ratios", subsample_size=9),
        dict(acq_func="bald", label_free=True, balance_acquisition=True),
    ],
)
def test_a_pool_asked_in_chunks_labels_what_one_request_labels(
    monkeypatch: pytest.MonkeyPatch, changes: dict
) -> None:
    labels = np.array([0, 1] * 20)
    probs = np.random.default_rng(5).random(labels.size)
    config = ALConfig(**{**SCRIPTED_RUN, "al_iter": 4, **changes})
    whole = run_active_learning(ScriptedLearner(40, probs=probs), labels, config, None, log=None)
    monkeypatch.setattr("active_learning.loop.QUERY_CHUNK_ROWS", 4)
    learner = ChunkedLearner(40, probs=probs)
    chunked = run_active_learning(learner, labels, config, None, log=None)
    np.testing.assert_array_equal(chunked.labelled, whole.labelled)
    assert max(learner.asked) <= 4 and len(learner.asked) >= 3 * config.al_iter  # chunked
