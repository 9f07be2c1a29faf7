"""Selecting the query: top-k, class balance, no repeats, nothing already labelled."""

from __future__ import annotations

import numpy as np
import pytest

from active_learning.selection import (
    balanced_top_k,
    candidate_indices,
    select_query,
    top_k,
    unlabelled_indices,
)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_top_k_picks_the_highest_best_first() -> None:
    scores = np.array([0.1, 0.9, 0.3, 0.7, 0.5])
    np.testing.assert_array_equal(top_k(scores, 3, rng()), [1, 3, 4])
    np.testing.assert_array_equal(top_k(scores, 10, rng()), [1, 3, 4, 2, 0])
    assert top_k(scores, 0, rng()).size == 0


def test_top_k_breaks_ties_at_random_but_reproducibly() -> None:
    scores = np.array([1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.0])
    picks = {tuple(top_k(scores, 3, rng(s))) for s in range(20)}
    assert all(p[0] == 0 and set(p[1:]) <= {1, 2, 3, 4, 5, 6} for p in picks)
    assert len(picks) > 5  # ties are not resolved by position
    np.testing.assert_array_equal(top_k(scores, 3, rng(4)), top_k(scores, 3, rng(4)))


def test_all_equal_scores_give_a_uniform_sample() -> None:
    counts = np.zeros(10)
    for seed in range(2000):
        chosen = top_k(np.zeros(10), 3, rng(seed))
        assert np.unique(chosen).size == 3
        counts[chosen] += 1
    np.testing.assert_allclose(counts / 2000, 0.3, atol=0.04)


def test_top_k_rejects_nan() -> None:
    with pytest.raises(ValueError, match="NaN"):
        top_k(np.array([0.1, np.nan]), 1, rng())


@pytest.mark.parametrize("k", [4, 5, 7])
def test_balanced_even_and_odd(k: int) -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.95, 0.4, 0.3, 0.2, 0.1])
    classes = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    chosen = balanced_top_k(scores, classes, k, rng())
    assert chosen.size == k and np.unique(chosen).size == k
    per_class = np.bincount(classes[chosen], minlength=2)
    assert abs(per_class[0] - per_class[1]) <= 1
    # each class's share is its top scores
    for c in (0, 1):
        members = np.flatnonzero(classes == c)
        best = members[np.argsort(-scores[members])][: per_class[c]]
        assert set(chosen[classes[chosen] == c]) == set(best)


def test_balanced_odd_extra_goes_to_the_better_next_candidate() -> None:
    scores = np.array([0.9, 0.8, 0.2, 0.1])  # class 0's second (0.8) beats class 1's (0.1)
    classes = np.array([0, 0, 1, 1])
    np.testing.assert_array_equal(balanced_top_k(scores, classes, 3, rng()), [0, 1, 2])
    scores = np.array([0.9, 0.1, 0.2, 0.8])  # now class 1's second (0.2) is better
    np.testing.assert_array_equal(balanced_top_k(scores, classes, 3, rng()), [0, 3, 2])


def test_balanced_short_class_is_filled_by_the_other() -> None:
    scores = np.array([0.1, 0.9, 0.8, 0.7, 0.6, 0.5])
    classes = np.array([1, 0, 0, 0, 0, 0])
    chosen = balanced_top_k(scores, classes, 4, rng())
    assert sorted(chosen) == [0, 1, 2, 3]
    assert balanced_top_k(scores, classes, 10, rng()).size == 6


def test_select_query_maps_to_pool_indices_and_skips_labelled() -> None:
    candidates = np.array([10, 11, 12, 13, 14])
    scores = np.array([0.5, 0.9, 0.1, 0.8, 0.7])
    chosen, chosen_scores = select_query(candidates, scores, 2, rng(), labelled=np.array([11]))
    np.testing.assert_array_equal(chosen, [13, 14])
    np.testing.assert_array_equal(chosen_scores, [0.8, 0.7])
    classes = np.array([0, 0, 1, 1, 1])
    chosen, _ = select_query(candidates, scores, 3, rng(), classes=classes, labelled=[13])
    np.testing.assert_array_equal(sorted(chosen), [10, 11, 14])
    with pytest.raises(ValueError, match="twice"):
        select_query(np.array([1, 1]), np.array([0.1, 0.2]), 1, rng())


def test_candidates_never_include_labelled_nor_repeat() -> None:
    labelled = np.array([0, 5, 7])
    np.testing.assert_array_equal(unlabelled_indices(9, labelled), [1, 2, 3, 4, 6, 8])
    whole = candidate_indices(9, labelled, 0, rng())
    np.testing.assert_array_equal(whole, [1, 2, 3, 4, 6, 8])
    sub = candidate_indices(1000, np.arange(0, 1000, 2), 100, rng(3))
    assert sub.size == 100 and np.unique(sub).size == 100 and (sub % 2 == 1).all()
    assert candidate_indices(9, labelled, 100, rng()).size == 6


def test_repeated_queries_never_select_twice() -> None:
    generator = rng(1)
    labelled = np.arange(4)
    scores_all = generator.random(200)
    for _ in range(10):
        candidates = candidate_indices(200, labelled, 50, generator)
        classes = (candidates % 2).astype(int)
        new, _ = select_query(
            candidates, scores_all[candidates], 7, generator, classes=classes, labelled=labelled
        )
        assert not np.isin(new, labelled).any() and np.unique(new).size == new.size == 7
        labelled = np.concatenate([labelled, new])
    assert np.unique(labelled).size == labelled.size == 74
