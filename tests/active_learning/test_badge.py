"""BADGE: gradient embeddings against autograd, k-means++ seeding against a direct
implementation with the same random stream, queries without repeats or labelled items."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from active_learning.acquisition import get_acquisition
from active_learning.badge import class_quotas, gradient_embeddings, kmeans_plus_plus
from active_learning.config import ALConfig
from active_learning.loop import run_active_learning
from active_learning.mlp_learner import MLPLearner
from active_learning.query_step import PoolScan, QueryRequest, stream_query


def test_embeddings_are_the_heads_loss_gradient_at_the_predicted_label() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 4))
    w, b = rng.standard_normal(4), 0.3
    probs = 1 / (1 + np.exp(-(x @ w + b)))
    expected = []
    for row in x:  # autograd of BCE(sigmoid(w.x + b), y_hat) with respect to (w, b)
        weight = torch.tensor(w, requires_grad=True)
        bias = torch.tensor(b, dtype=torch.float64, requires_grad=True)
        logit = torch.tensor(row) @ weight + bias
        target = (torch.sigmoid(logit) >= 0.5).double().detach()
        torch.nn.functional.binary_cross_entropy_with_logits(logit, target).backward()
        expected.append(np.concatenate([weight.grad.numpy(), [bias.grad.item()]]))
    np.testing.assert_allclose(gradient_embeddings(x, probs), np.array(expected), rtol=1e-10)


def direct_kmeans_plus_plus(points: np.ndarray, k: int, rng: np.random.Generator) -> list[int]:
    """k-means++ as defined (Arthur and Vassilvitskii 2007), first seed the largest norm (as
    BADGE's code does); each distance recomputed from the points, one rng.random() a draw."""
    chosen = [int(np.argmax(np.linalg.norm(points, axis=1)))]
    while len(chosen) < k:
        nearest = np.min([np.sum((points - points[c]) ** 2, axis=1) for c in chosen], axis=0)
        nearest[chosen] = 0.0
        cumulative = np.cumsum(nearest)
        chosen.append(int(np.searchsorted(cumulative, rng.random() * cumulative[-1], "right")))
    return chosen


@pytest.mark.parametrize("seed", range(4))
def test_seeding_is_kmeans_plus_plus(seed: int) -> None:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((5, 8)) * 4
    points = centres[rng.integers(0, 5, 300)] + rng.standard_normal((300, 8))
    ours = kmeans_plus_plus(points, 20, np.random.default_rng(100 + seed))
    assert ours.tolist() == direct_kmeans_plus_plus(points, 20, np.random.default_rng(100 + seed))
    assert np.unique(ours).size == 20


def test_seeding_spreads_over_clusters_and_handles_duplicates() -> None:
    rng = np.random.default_rng(1)
    centres = np.eye(6) * 50
    points = np.repeat(centres, 40, axis=0) + 0.01 * rng.standard_normal((240, 6))
    seeds = kmeans_plus_plus(points, 6, rng)
    assert sorted(seeds // 40) == list(range(6))  # one seed in each far cluster
    same = np.ones((5, 3))  # every distance 0 after the first: the rest drawn uniformly
    assert sorted(kmeans_plus_plus(same, 5, rng)) == [0, 1, 2, 3, 4]


def test_class_quotas_split_evenly_and_fill_from_the_long_class() -> None:
    rng = np.random.default_rng(0)
    assert class_quotas([50, 50], 10, rng) == [5, 5]
    assert sorted(class_quotas([50, 50], 11, rng)) == [5, 6]
    assert class_quotas([2, 50], 10, rng) == [2, 8]
    assert class_quotas([2, 3], 10, rng) == [2, 3]


@pytest.mark.parametrize(("balanced", "label_free"), [(False, False), (True, False), (True, True)])
def test_a_badge_query_never_repeats_nor_takes_labelled_items(balanced, label_free) -> None:
    rng = np.random.default_rng(3)
    inputs = rng.standard_normal((500, 6))
    probs = 1 / (1 + np.exp(-(inputs @ rng.standard_normal(6))))
    labels = rng.integers(0, 2, 500)
    taken = np.arange(0, 500, 4)

    def head_inputs(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return inputs[rows], probs[rows]

    def run(chunk_rows: int):
        return stream_query(
            QueryRequest(get_acquisition("badge"), 40, balanced, label_free, labels),
            PoolScan(taken, 0, 0, chunk_rows=chunk_rows),
            lambda rows: pytest.fail("BADGE runs no MC-dropout pass"),
            tie_seed=0,
            select_rng=np.random.default_rng(8),
            head_inputs=head_inputs,
        )

    found = run(64)
    assert np.unique(found.indices).size == 40 and not np.isin(found.indices, taken).any()
    np.testing.assert_array_equal(run(500).indices, found.indices)  # chunks do not matter
    if balanced:
        classes = (probs >= 0.5).astype(int) if label_free else labels
        assert np.bincount(classes[found.indices], minlength=2).tolist() == [20, 20]
    free = np.setdiff1d(np.arange(500), taken)  # the direct seeding over the same candidates
    if not balanced:
        direct = direct_kmeans_plus_plus(
            gradient_embeddings(inputs[free], probs[free]), 40, np.random.default_rng(8)
        )
        np.testing.assert_array_equal(found.indices, free[direct])


def test_the_loop_runs_badge_on_the_reference_learner(digits) -> None:
    learner = MLPLearner(digits.pool_x, digits.pool_y, digits.val_x, digits.val_y)
    config = ALConfig(
        acq_func="badge", num_samples_per_class=5, query=10, al_iter=2, al_niter_warmup=2,
        niter=2, earlystop_epoch=0, badge_candidates=200,
    )  # fmt: skip
    result = run_active_learning(learner, digits.pool_y, config, None, log=None)
    assert np.unique(result.labelled).size == result.labelled.size == 10 + 2 * 10
