"""Choosing the query from scored candidates: top-k, class-balanced top-k, candidate pools.

One rule everywhere: candidates are ranked by score, highest first, and equal scores by a
random key, lowest first. The key of pool item i is a hash of (seed, i) (:func:`tie_keys`), a
function of the item alone, so a pool scored in chunks, or by several processes that merge
what they kept (:class:`RunningSelection`), picks exactly what scoring it whole picks. An
all-zero score (``uniform``) thus gives a uniform random sample without replacement, and equal
var-ratios scores are not resolved by pool order. Every function returns positions or pool
indices without repeats.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

MIX_1, MIX_2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
SEED_BOUND = 2**63  # seeds drawn from a generator for tie_keys lie in [0, SEED_BOUND)


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser (Steele, Lea and Flood 2014): a bijection of uint64 whose output
    bits each depend on every input bit."""
    z = (z ^ (z >> np.uint64(30))) * MIX_1
    z = (z ^ (z >> np.uint64(27))) * MIX_2
    return z ^ (z >> np.uint64(31))


def tie_keys(seed: int, rows: np.ndarray) -> np.ndarray:
    """A key in [0, 1) for each pool item in ``rows``: uniform, independent across items, and a
    function of (``seed``, item) only (not of which other items are scored with it)."""
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps modulo 2**64 by design
        base = _mix(np.asarray([seed % 2**64], dtype=np.uint64) * GOLDEN + GOLDEN)
        z = _mix(np.asarray(rows, dtype=np.uint64) * GOLDEN + base)
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _check_scores(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1:
        raise ValueError(f"scores must be one-dimensional, got shape {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    return scores


def best_positions(scores: np.ndarray, keys: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` best (highest score, then lowest key), best first.

    O(N) to find them, plus a sort of the k chosen.
    """
    n = scores.size
    k = max(0, min(int(k), n))
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    if k < n:
        kth = -np.partition(-scores, k - 1)[k - 1]
        above = np.flatnonzero(scores > kth)
        tied = np.flatnonzero(scores == kth)
        need = k - above.size
        if need < tied.size:
            tied = tied[np.argpartition(keys[tied], need - 1)[:need]]
        chosen = np.concatenate([above, tied])
    else:
        chosen = np.arange(n)
    return chosen[np.lexsort((keys[chosen], -scores[chosen]))].astype(np.int64)


def top_k(scores: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Positions of the ``k`` highest scores (all of them if fewer), best first; equal scores
    in a random order drawn from ``rng``."""
    scores = _check_scores(scores)
    return best_positions(scores, rng.random(scores.size), k)


def _class_values(classes: np.ndarray) -> np.ndarray:
    """The distinct classes present (bincount for small non-negative integers: fast)."""
    small_ints = classes.size and np.issubdtype(classes.dtype, np.integer)
    if small_ints and classes.min() >= 0 and classes.max() < 1024:
        return np.flatnonzero(np.bincount(classes))
    return np.unique(classes)


def fill_shares(ranked: list[np.ndarray], k: int, rng: np.random.Generator) -> list[int]:
    """How many of each class's ranked scores (best first) a balanced query of ``k`` takes: an
    equal share each; the rest one at a time to the class whose next candidate scores higher
    (ties between classes in a random order); a short class gives all it has."""
    share = k // len(ranked)
    taken = [min(share, r.size) for r in ranked]
    tiebreak = rng.permutation(len(ranked))
    while sum(taken) < min(k, sum(r.size for r in ranked)):
        open_classes = [c for c in range(len(ranked)) if taken[c] < ranked[c].size]
        best = max(open_classes, key=lambda c: (ranked[c][taken[c]], -tiebreak[c]))
        taken[best] += 1
    return taken


def balanced_top_k(
    scores: np.ndarray, classes: np.ndarray, k: int, rng: np.random.Generator
) -> np.ndarray:
    """Positions of ``k`` candidates, an equal share from each class present, each share the
    top scores of its class; best first (see :func:`fill_shares` for odd shares)."""
    scores = _check_scores(scores)
    classes = np.asarray(classes)
    if classes.shape != scores.shape:
        raise ValueError(f"classes shape {classes.shape} differs from scores {scores.shape}")
    selection = RunningSelection(k, balanced=True)
    selection.add(np.arange(scores.size), scores, rng.random(scores.size), classes)
    chosen, _ = selection.result(rng)
    return chosen


class RunningSelection:
    """The best ``k`` candidates seen so far (per class with ``balanced``): O(k) memory.

    Add scored chunks in any order, merge what other processes kept, then :meth:`result` is
    what one selection over every candidate at once gives. Candidates are ranked by
    ``scores``; ``reported`` values (default: the scores) travel with them to the result (a
    sampled query ranks by perturbed scores but reports the strategy's own).
    """

    FIELDS = ("rows", "scores", "keys", "classes", "reported")

    def __init__(self, k: int, balanced: bool = False) -> None:
        self.k = max(0, int(k))
        self.balanced = balanced
        empty = np.zeros(0, dtype=np.float64)
        self.rows = np.zeros(0, dtype=np.int64)
        self.scores, self.keys, self.reported = empty, empty, empty
        self.classes = np.zeros(0, dtype=np.int64)

    def add(
        self,
        rows: np.ndarray,
        scores: np.ndarray,
        keys: np.ndarray,
        classes: np.ndarray | None = None,
        reported: np.ndarray | None = None,
    ) -> None:
        """Candidates ``rows`` with their scores, tie keys and (balanced) classes."""
        scores = _check_scores(scores)
        if self.balanced and classes is None:
            raise ValueError("a balanced selection needs the candidates' classes")
        classes = np.zeros(scores.size, dtype=np.int64) if classes is None else classes
        reported = scores if reported is None else np.asarray(reported, dtype=np.float64)
        arrays = (np.asarray(rows, np.int64), scores, np.asarray(keys, np.float64), classes)
        arrays += (reported,)
        if len({a.shape for a in arrays}) != 1:
            shapes = [a.shape for a in arrays]
            raise ValueError(f"rows, scores, keys, classes and reported disagree: {shapes}")
        self._keep(*(np.concatenate(pair) for pair in zip(self.state(), arrays, strict=True)))

    def merge(self, other: RunningSelection) -> None:
        """Take in what another selection (another process's chunks) kept."""
        pairs = zip(self.state(), other.state(), strict=True)
        self._keep(*(np.concatenate(pair) for pair in pairs))

    def state(self) -> tuple[np.ndarray, ...]:
        """What it kept, as :attr:`FIELDS` (to send to another process)."""
        return tuple(getattr(self, name) for name in self.FIELDS)

    @classmethod
    def from_state(cls, k: int, balanced: bool, state: tuple[np.ndarray, ...]) -> RunningSelection:
        """A selection holding another's :meth:`state`."""
        selection = cls(k, balanced)
        for name, values in zip(cls.FIELDS, state, strict=True):
            setattr(selection, name, values)
        return selection

    def _keep(self, *arrays: np.ndarray) -> None:
        rows, scores, keys, classes, _ = arrays
        groups = _class_values(classes) if self.balanced else np.zeros(1, dtype=np.int64)
        kept = []
        for value in groups:
            members = np.flatnonzero(classes == value) if self.balanced else np.arange(rows.size)
            kept.append(members[best_positions(scores[members], keys[members], self.k)])
        order = np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)
        for name, values in zip(self.FIELDS, arrays, strict=True):
            setattr(self, name, np.asarray(values)[order])

    def result(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The chosen rows and their reported values, best first (``rng`` orders tied
        classes)."""
        if not self.balanced or self.rows.size == 0:
            best = best_positions(self.scores, self.keys, self.k)
            return self.rows[best], self.reported[best]
        ranked = []  # each class's kept candidates, best first (as _keep left them)
        for value in _class_values(self.classes):
            ranked.append(np.flatnonzero(self.classes == value))
        taken = fill_shares([self.scores[r] for r in ranked], self.k, rng)
        chosen = np.concatenate([r[:t] for r, t in zip(ranked, taken, strict=True)])
        chosen = chosen[np.lexsort((self.keys[chosen], -self.scores[chosen]))]
        return self.rows[chosen], self.reported[chosen]


def _has_repeats(values: np.ndarray) -> bool:
    if values.size < 2:
        return False
    steps = np.diff(values)
    if (steps > 0).all():  # sorted without repeats: the usual case, checked in O(N)
        return False
    return bool((np.diff(np.sort(values)) == 0).any())


def unlabelled_in(start: int, stop: int, taken: np.ndarray) -> np.ndarray:
    """Pool items in [start, stop) not in ``taken`` (sorted, no repeats)."""
    inside = taken[np.searchsorted(taken, start) : np.searchsorted(taken, stop)]
    mask = np.ones(stop - start, dtype=bool)
    mask[inside - start] = False
    return np.flatnonzero(mask) + start


def unlabelled_indices(pool_size: int, labelled: np.ndarray) -> np.ndarray:
    """Pool indices (sorted) not in ``labelled``."""
    return unlabelled_in(0, pool_size, np.unique(np.asarray(labelled, dtype=np.int64)))


def candidate_chunks(
    pool_size: int, taken: np.ndarray, subsample_size: int, seed: int, chunk_rows: int
) -> Iterator[np.ndarray]:
    """The unlabelled pool (items not in ``taken``), or a random ``subsample_size`` of it, in
    sorted chunks of at most ``chunk_rows`` items; memory O(chunk_rows + subsample_size).

    The subsample is the items with the lowest :func:`tie_keys` under ``seed``: uniform without
    replacement, and the same whatever ``chunk_rows``. 0 (or at least the unlabelled count)
    takes the whole unlabelled pool.
    """
    taken = np.unique(np.asarray(taken, dtype=np.int64))
    chunk_rows = max(1, int(chunk_rows))
    if 0 < subsample_size < pool_size - taken.size:
        sample = RunningSelection(subsample_size)
        for start in range(0, pool_size, chunk_rows):
            rows = unlabelled_in(start, min(start + chunk_rows, pool_size), taken)
            sample.add(rows, np.zeros(rows.size), tie_keys(seed, rows))
        chosen = np.sort(sample.rows)
        for start in range(0, chosen.size, chunk_rows):
            yield chosen[start : start + chunk_rows]
        return
    for start in range(0, pool_size, chunk_rows):
        rows = unlabelled_in(start, min(start + chunk_rows, pool_size), taken)
        if rows.size:
            yield rows


def candidate_indices(
    pool_size: int, labelled: np.ndarray, subsample_size: int, rng: np.random.Generator
) -> np.ndarray:
    """The unlabelled pool, or a random subset of ``subsample_size`` of it (sorted)."""
    seed = int(rng.integers(SEED_BOUND))
    chunks = list(candidate_chunks(pool_size, labelled, subsample_size, seed, max(pool_size, 1)))
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)


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
    twice is an error. The same as a :class:`RunningSelection` fed in chunks, with keys
    ``tie_keys(rng.integers(SEED_BOUND), rows)``, then ``rng`` for its ``result``.
    """
    candidates = np.asarray(candidates, dtype=np.int64)
    scores = _check_scores(scores)
    if candidates.shape != scores.shape:
        raise ValueError(f"{candidates.size} candidates but {scores.size} scores")
    if _has_repeats(candidates):
        raise ValueError("a candidate index is listed twice")
    keys = tie_keys(int(rng.integers(SEED_BOUND)), candidates)
    keep = np.ones(candidates.size, dtype=bool)
    if labelled is not None and len(labelled) and candidates.size:
        keep = ~np.isin(candidates, np.asarray(labelled, dtype=np.int64))
    selection = RunningSelection(k, balanced=classes is not None)
    picked_classes = None if classes is None else np.asarray(classes)[keep]
    selection.add(candidates[keep], scores[keep], keys[keep], picked_classes)
    return selection.result(rng)
