"""BADGE (Ash et al. 2020, "Deep Batch Active Learning by Diverse, Uncertain Gradient Lower
Bounds"): a query that is both uncertain and diverse, by k-means++ seeding over the gradient
embeddings of the last layer.

For a sigmoid head on inputs x (cached features, or the last hidden layer), the gradient of
the BCE loss with respect to the head's weights and bias, taking the predicted class y_hat as
the label, is ``(p - y_hat) * [x, 1]``: long for uncertain items (p near 0.5), pointing where
the item lies. k-means++ seeding picks the first centre with the largest norm (as BADGE's
code does), then each next one with probability proportional to its squared distance to the
nearest centre chosen so far (D^2 sampling), so it never picks a chosen item twice nor two
near-duplicates while farther items remain.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from active_learning.selection import fill_shares


def gradient_embeddings(inputs: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """``(p - y_hat) * [x, 1]`` for each row x of ``inputs`` [N, D] and P(positive) ``probs``
    [N], with y_hat = 1 where p >= 0.5; float64 [N, D + 1]."""
    inputs = np.asarray(inputs, dtype=np.float64)
    probs = np.asarray(probs, dtype=np.float64).reshape(-1)
    if inputs.ndim != 2 or inputs.shape[0] != probs.size:
        raise ValueError(f"inputs {inputs.shape} and probabilities {probs.shape} disagree")
    scale = probs - (probs >= 0.5)
    return np.hstack([inputs, np.ones((inputs.shape[0], 1))]) * scale[:, None]


def kmeans_plus_plus(embeddings: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Positions of ``k`` k-means++ seeds over ``embeddings`` [N, E], in the order picked.

    The first is the row of largest norm (the lowest position among equals); every next one
    is drawn with one ``rng.random()`` by inverting the cumulative squared distances to the
    nearest seed so far. Once every remaining row coincides with a seed (all distances 0) the
    rest are drawn uniformly from the rows not picked. O(k N E) time, O(N) memory beyond the
    embeddings.
    """
    embeddings = np.asarray(embeddings, dtype=np.float64)
    n = embeddings.shape[0]
    k = max(0, min(int(k), n))
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    norms = np.einsum("ij,ij->i", embeddings, embeddings)
    embeddings = embeddings.astype(np.float32)  # the k products: half the memory traffic
    chosen = [int(np.argmax(norms))]
    nearest = _squared_distances(embeddings, norms, chosen[0])
    while len(chosen) < k:
        total = float(nearest.sum())
        if total > 0:
            cumulative = np.cumsum(nearest)
            pick = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
            pick = min(pick, n - 1)
        else:
            free = np.setdiff1d(np.arange(n), chosen)
            pick = int(free[int(rng.integers(free.size))])
        chosen.append(pick)
        nearest = np.minimum(nearest, _squared_distances(embeddings, norms, pick))
    return np.asarray(chosen, dtype=np.int64)


def _squared_distances(embeddings: np.ndarray, norms: np.ndarray, centre: int) -> np.ndarray:
    """||e_i - e_centre||^2 for every row (0 at the centre itself, never negative); the dot
    products in float32, the norms in float64."""
    distances = norms + norms[centre] - 2.0 * (embeddings @ embeddings[centre]).astype(np.float64)
    np.maximum(distances, 0.0, out=distances)
    distances[centre] = 0.0
    return distances


def class_quotas(counts: Sequence[int], k: int, rng: np.random.Generator) -> list[int]:
    """How many of a ``k`` query each class gives (a class has ``counts[c]`` candidates): the
    balanced query's rule (:func:`~active_learning.selection.fill_shares`) with no scores to
    tell the classes apart, so the extra picks go to classes in a random order; a short class
    gives all it has and the others fill the query."""
    return fill_shares([np.zeros(count) for count in counts], k, rng)


def badge_query(
    inputs: np.ndarray,
    probs: np.ndarray,
    k: int,
    rng: np.random.Generator,
    classes: np.ndarray | None = None,
) -> np.ndarray:
    """Positions of a BADGE query of ``k`` among the candidates whose head inputs and
    P(positive) are given; with ``classes``, :func:`class_quotas` of each class, each class's
    share seeded over its own candidates."""
    embeddings = gradient_embeddings(inputs, probs)
    if classes is None:
        return kmeans_plus_plus(embeddings, k, rng)
    classes = np.asarray(classes)
    values = np.unique(classes)
    members = [np.flatnonzero(classes == value) for value in values]
    quotas = class_quotas([m.size for m in members], k, rng)
    picks = [
        m[kmeans_plus_plus(embeddings[m], q, rng)] for m, q in zip(members, quotas, strict=True)
    ]
    return np.concatenate(picks) if picks else np.zeros(0, dtype=np.int64)
