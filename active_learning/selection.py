"""Choosing the query from scored candidates: top-k, class-balanced top-k, candidate pools.

Ties are broken by a seeded random permutation, so an all-zero score (``uniform``) gives a
uniform random sample without replacement, and equal var-ratios scores are not resolved by pool
order. Every function returns positions or pool indices without repeats.
"""

from __future__ import annotations

import numpy as np


def _check_scores(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1:
        raise ValueError(f"scores must be one-dimensional, got shape {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    return scores


def top_k(scores: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Positions of the ``k`` highest scores (all of them if fewer), best first.

    Equal scores are ordered at random (by ``rng``). O(N) plus a sort of the chosen k.
    """
    scores = _check_scores(scores)
    n = scores.size
    k = max(0, min(int(k), n))
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    perm = rng.permutation(n)
    shuffled = scores[perm]
    if k < n:
        kth = shuffled[np.argpartition(-shuffled, k - 1)[k - 1]]
        above = np.flatnonzero(shuffled > kth)
        tied = np.flatnonzero(shuffled == kth)[: k - above.size]
        chosen = np.concatenate([above, tied])  # sorted positions: ties in random order
    else:
        chosen = np.arange(n)
    chosen = chosen[np.argsort(-shuffled[chosen], kind="stable")]
    return perm[chosen].astype(np.int64)


def _class_values(classes: np.ndarray) -> np.ndarray:
    """The distinct classes present (bincount for small non-negative integers: fast)."""
    small_ints = classes.size and np.issubdtype(classes.dtype, np.integer)
    if small_ints and classes.min() >= 0 and classes.max() < 1024:
        return np.flatnonzero(np.bincount(classes))
    return np.unique(classes)


def _has_repeats(values: np.ndarray) -> bool:
    if values.size < 2:
        return False
    steps = np.diff(values)
    if (steps > 0).all():  # sorted without repeats: the usual case, checked in O(N)
        return False
    return bool((np.diff(np.sort(values)) == 0).any())


def balanced_top_k(
    scores: np.ndarray, classes: np.ndarray, k: int, rng: np.random.Generator
) -> np.ndarray:
    """Positions of ``k`` candidates, an equal share from each class present, each share the
    top scores of its class; best first.

    With an odd ``k`` (or a share that does not divide) the extra picks go, one at a time, to
    the class whose next candidate scores higher (ties at random). A class with too few
    candidates gives all it has and the other classes fill the query.
    """
    scores = _check_scores(scores)
    classes = np.asarray(classes)
    if classes.shape != scores.shape:
        raise ValueError(f"classes shape {classes.shape} differs from scores {scores.shape}")
    k = max(0, min(int(k), scores.size))
    values = _class_values(classes)
    if k == 0 or values.size == 0:
        return np.zeros(0, dtype=np.int64)
    share = k // values.size
    # each class's candidates ranked (up to k of them), as positions into `scores`
    ranked = []
    for value in values:
        members = np.flatnonzero(classes == value)
        ranked.append(members[top_k(scores[members], k, rng)])
    taken = [min(share, r.size) for r in ranked]
    tiebreak = rng.permutation(values.size)
    while sum(taken) < k:
        open_classes = [c for c in range(values.size) if taken[c] < ranked[c].size]
        best = max(open_classes, key=lambda c: (scores[ranked[c][taken[c]]], -tiebreak[c]))
        taken[best] += 1
    chosen = np.concatenate([r[:t] for r, t in zip(ranked, taken, strict=True)])
    return chosen[np.argsort(-scores[chosen], kind="stable")].astype(np.int64)


def unlabelled_indices(pool_size: int, labelled: np.ndarray) -> np.ndarray:
    """Pool indices (sorted) not in ``labelled``."""
    mask = np.ones(pool_size, dtype=bool)
    mask[np.asarray(labelled, dtype=np.int64)] = False
    return np.flatnonzero(mask)


def candidate_indices(
    pool_size: int, labelled: np.ndarray, subsample_size: int, rng: np.random.Generator
) -> np.ndarray:
    """The unlabelled pool, or a random subset of ``subsample_size`` of it (sorted).

    ``subsample_size`` 0 (or at least the unlabelled count) scores the whole unlabelled pool.
    """
    free = unlabelled_indices(pool_size, labelled)
    if 0 < subsample_size < free.size:
        free = np.sort(rng.choice(free, size=subsample_size, replace=False))
    return free


def select_query(
    candidates: np.ndarray,
    scores: np.ndarray,
    k: int,
    rng: np.random.Generator,
    *,
    classes: np.ndarray | None = None,
    labelled: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pool indices of the query and their scores, best first.

    ``candidates`` are pool indices aligned with ``scores`` (and ``classes``, which turns on
    class balancing). Candidates already in ``labelled`` are never chosen; a candidate listed
    twice is an error.
    """
    candidates = np.asarray(candidates, dtype=np.int64)
    scores = _check_scores(scores)
    if candidates.shape != scores.shape:
        raise ValueError(f"{candidates.size} candidates but {scores.size} scores")
    if _has_repeats(candidates):
        raise ValueError("a candidate index is listed twice")
    keep = np.ones(candidates.size, dtype=bool)
    if labelled is not None and len(labelled) and candidates.size:
        labelled = np.asarray(labelled, dtype=np.int64)
        size = int(max(candidates.max(), labelled.max())) + 1
        is_labelled = np.zeros(size, dtype=bool)
        is_labelled[labelled] = True
        keep = ~is_labelled[candidates]
    positions = np.flatnonzero(keep)
    if classes is None:
        chosen = top_k(scores[positions], k, rng)
    else:
        chosen = balanced_top_k(scores[positions], np.asarray(classes)[positions], k, rng)
    picked = positions[chosen]
    return candidates[picked], scores[picked]
