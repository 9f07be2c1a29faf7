"""One query over the pool, streamed in chunks: the memory it allocates is bounded by the chunk
and the query size, whatever the pool size, and its time grows linearly with the pool.

Each chunk of candidates (pool order, labelled items left out: :func:`candidate_chunks`) gets
its MC-dropout probabilities, its scores and its classes, and only the best ``query`` of them
(per class when balanced) are kept (:class:`RunningSelection`). A loss-weighted score
normalises its plain score by the plain score's range over every candidate, so it takes two
passes: the range first, then the scores. Several processes can share the chunks
(``rank``/``world``) and merge what they found with ``gather`` (e.g. ``all_gather_object``);
they then pick exactly what one process picks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from active_learning.acquisition import (
    Acquisition,
    combine_bounds,
    plain_bounds,
    predicted_labels,
    score,
)
from active_learning.badge import badge_query, gradient_embeddings
from active_learning.selection import RunningSelection, candidate_chunks, tie_keys

QUERY_CHUNK_ROWS = 131_072  # T=10 float32 passes: 5 MB a chunk, ~60 MB of float64 temporaries
Probabilities = Callable[[np.ndarray], np.ndarray]  # pool items -> [T, len(items)] P(fake)
HeadInputs = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # -> [n, D] inputs, [n] P
Unreadable = Callable[[np.ndarray], np.ndarray]  # pool items -> bool mask: cannot be read
Gather = Callable[[Any], list[Any]]  # one object per process -> every process's, rank order

NO_INDICES = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class QueryRequest:
    """What to pick: ``query`` items by ``acquisition``, class-balanced or not, scored on the
    true labels (``labels``, simulation) or on the predicted ones (``label_free``)."""

    acquisition: Acquisition
    query: int
    balanced: bool
    label_free: bool
    labels: np.ndarray  # the oracle: the pool's labels
    temperature: float = 1.0  # of a sampled (stochastic) acquisition

    @property
    def needs_probs(self) -> bool:
        predicted = self.label_free and (self.balanced or self.acquisition.needs_labels)
        return self.acquisition.needs_probs or predicted


@dataclass(frozen=True)
class PoolScan:
    """Where the candidates come from: pool items not in ``taken``, or a random
    ``subsample_size`` of them (drawn with ``subsample_seed``), ``chunk_rows`` at a time,
    every ``world``-th chunk from ``rank`` on."""

    taken: np.ndarray
    subsample_size: int
    subsample_seed: int
    chunk_rows: int = QUERY_CHUNK_ROWS
    rank: int = 0
    world: int = 1

    def chunks(self, pool_size: int) -> Iterator[np.ndarray]:
        every = candidate_chunks(
            pool_size, self.taken, self.subsample_size, self.subsample_seed, self.chunk_rows
        )
        for number, rows in enumerate(every):
            if number % self.world == self.rank:
                yield rows


@dataclass(frozen=True)
class StreamedQuery:
    """The chosen pool items and their scores (best first), and the candidates found
    unreadable and left out (sorted)."""

    indices: np.ndarray
    scores: np.ndarray
    unreadable: np.ndarray


def _checked(probs: np.ndarray, rows: np.ndarray, passes: int | None) -> np.ndarray:
    probs = np.asarray(probs)
    if probs.ndim != 2 or probs.shape[1] != rows.size or (passes and probs.shape[0] != passes):
        raise ValueError(
            f"mc_probabilities returned shape {probs.shape}, not ({passes}, {rows.size})"
        )
    broken = ~np.isfinite(probs).all(axis=0)
    if broken.any():
        raise ValueError(
            f"mc_probabilities returned non-finite probabilities for {int(broken.sum())} of "
            f"{rows.size} candidates (pool items {rows[broken][:5].tolist()}); a learner that "
            "cannot read some pool items must say so with unreadable_items "
            "(active_learning.learner.ReportsUnreadable)"
        )
    return probs


def _readable_chunks(
    scan: PoolScan, pool_size: int, unreadable: Unreadable | None, found: list[np.ndarray]
) -> Iterator[np.ndarray]:
    """The scan's chunks without the items ``unreadable`` reports (noted in ``found``)."""
    for rows in scan.chunks(pool_size):
        if unreadable is not None:
            bad = np.asarray(unreadable(rows), dtype=bool)
            found.append(rows[bad])
            rows = rows[~bad]
        if rows.size:
            yield rows


class _Scan:
    """The chunks of one query with their probabilities: read once, or twice when the score
    needs the plain score's range first (a single chunk is kept, not computed again)."""

    def __init__(
        self,
        request: QueryRequest,
        scan: PoolScan,
        probabilities: Probabilities,
        unreadable: Unreadable | None,
        passes: int | None,
    ) -> None:
        self.request, self.scan, self.passes = request, scan, passes
        self.probabilities, self.unreadable = probabilities, unreadable
        self.found: list[np.ndarray] = []
        self._last: tuple[np.ndarray, np.ndarray] | None = None
        self._count = 0

    def first(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every chunk with its probabilities, the unreadable items left out (and noted)."""
        self._last, self._count = None, 0
        pool_size = self.request.labels.size
        for rows in _readable_chunks(self.scan, pool_size, self.unreadable, self.found):
            self._last, self._count = (rows, self._probs(rows)), self._count + 1
            yield self._last

    def again(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The same chunks once more (after :meth:`first` has run to its end)."""
        if self._count == 1 and self._last is not None:  # kept: not computed twice
            yield self._last
            return
        left_out = np.concatenate(self.found) if self.found else NO_INDICES
        for rows in self.scan.chunks(self.request.labels.size):
            rows = rows[~np.isin(rows, left_out)] if left_out.size else rows
            if rows.size:
                yield rows, self._probs(rows)

    def _probs(self, rows: np.ndarray) -> np.ndarray:
        if not self.request.needs_probs:
            return np.zeros((0, rows.size))
        return _checked(self.probabilities(rows), rows, self.passes)


def _chunk_scores(
    request: QueryRequest, rows: np.ndarray, probs: np.ndarray, bounds: Any
) -> tuple[np.ndarray, np.ndarray | None]:
    """Scores and (balanced) classes of one chunk."""
    acquisition = request.acquisition
    reads_labels = acquisition.needs_labels and not request.label_free  # simulation only
    labels = request.labels[rows] if reads_labels else None
    scores = score(acquisition.name, probs, labels, label_free=request.label_free, bounds=bounds)
    classes = None
    if request.balanced:
        classes = predicted_labels(probs) if request.label_free else request.labels[rows]
    return scores, classes


def gumbel_noise(seed: int, rows: np.ndarray) -> np.ndarray:
    """Standard Gumbel noise for each pool item, a function of (``seed``, item) only."""
    uniform = np.maximum(tie_keys(seed, rows), 2.0**-53)  # in (0, 1)
    return -np.log(-np.log(uniform))


def sampling_logits(mode: str, scores: np.ndarray, temperature: float) -> np.ndarray:
    """Log-probabilities (up to a constant) of the stochastic acquisitions (Kirsch et al.
    2023): power P ~ s^(1/t), softmax P ~ exp(s/t), softrank P ~ r^(-1/t) for ``scores``
    that are the ranks r (1 = best) of softrank."""
    beta = 1.0 / temperature
    if mode == "power":
        return beta * np.log(np.maximum(scores, np.finfo(np.float64).tiny))
    if mode == "softmax":
        return beta * scores
    if mode == "softrank":
        return -beta * np.log(scores)
    raise ValueError(f"unknown sampling {mode!r}")


def _softrank(
    parts: list[tuple[np.ndarray, ...]], request: QueryRequest, sample_seed: int
) -> RunningSelection:
    """Every candidate (``parts``: rows, scores, keys, classes per chunk) ranked by score
    (ties by key), then sampled by rank."""
    rows, scores, keys, classes = (np.concatenate(column) for column in zip(*parts, strict=True))
    order = np.lexsort((keys, -scores))
    ranks = np.empty(rows.size, dtype=np.float64)
    ranks[order] = np.arange(1, rows.size + 1)
    logits = sampling_logits("softrank", ranks, request.temperature)
    selection = RunningSelection(request.query, balanced=request.balanced)
    selection.add(rows, logits + gumbel_noise(sample_seed, rows), keys, classes, scores)
    return selection


def stream_query(
    request: QueryRequest,
    scan: PoolScan,
    probabilities: Probabilities,
    *,
    tie_seed: int,
    select_rng: np.random.Generator,
    unreadable: Unreadable | None = None,
    passes: int | None = None,
    gather: Gather | None = None,
    sample_seed: int = 0,
    head_inputs: HeadInputs | None = None,
) -> StreamedQuery:
    """Score the candidates chunk by chunk and pick the query (see the module docstring).

    ``tie_seed`` orders equal scores (:func:`tie_keys`); ``select_rng`` orders classes whose
    next candidates tie. A sampled acquisition (``power_``/``softmax_``/``softrank_``) takes
    the top ``query`` of its log-probabilities plus Gumbel noise drawn with ``sample_seed``
    (the Gumbel-top-k trick: a sample without replacement from the stated distribution);
    softrank needs every candidate's rank, so it keeps every score (8 bytes a candidate). With
    ``scan.world`` > 1 every process must call this with the same arguments but its own
    ``scan.rank``, and ``gather`` collects an object from each. BADGE reads ``head_inputs``
    (the head's inputs and its P(fake), dropout off) of every candidate instead.
    """
    if scan.world > 1 and gather is None:
        raise ValueError("a query shared by several processes needs gather")
    gather_all: Gather = gather if gather is not None else (lambda obj: [obj])
    if request.acquisition.badge:
        if head_inputs is None:
            raise ValueError("badge needs the head's inputs of the candidates (head_inputs)")
        return _badge(request, scan, head_inputs, select_rng, unreadable, gather_all)
    reader = _Scan(request, scan, probabilities, unreadable, passes)
    bounds = None
    chunks: Iterator[tuple[np.ndarray, np.ndarray]] = reader.first()
    if request.acquisition.needs_bounds:
        parts = [plain_bounds(request.acquisition.name, probs) for _, probs in chunks]
        bounds = combine_bounds([b for part in gather_all(parts) for b in part])
        chunks = reader.again()
    mode = request.acquisition.sampling
    selection = RunningSelection(request.query, balanced=request.balanced)
    every: list[tuple[np.ndarray, ...]] = []  # softrank: every candidate, to rank them all
    for rows, probs in chunks:
        scores, classes = _chunk_scores(request, rows, probs, bounds)
        keys = tie_keys(tie_seed, rows)
        if mode == "softrank":
            classes = np.zeros(rows.size, np.int64) if classes is None else classes
            every.append((rows, scores, keys, classes))
            continue
        ranked = scores
        if mode in ("power", "softmax"):
            logits = sampling_logits(mode, scores, request.temperature)
            ranked = logits + gumbel_noise(sample_seed, rows)
        selection.add(rows, ranked, keys, classes, reported=scores)
    merged = RunningSelection(request.query, balanced=request.balanced)
    everyone: list[tuple[np.ndarray, ...]] = []  # every rank's candidates (softrank)
    found: list[np.ndarray] = []
    for state, rank_every, rank_found in gather_all((selection.state(), every, reader.found)):
        merged.merge(RunningSelection.from_state(request.query, request.balanced, state))
        everyone.extend(rank_every)
        found.extend(rank_found)
    if mode == "softrank" and everyone:
        merged = _softrank(everyone, request, sample_seed)
    chosen, chosen_scores = merged.result(select_rng)
    return StreamedQuery(chosen, chosen_scores, _sorted(found))


def _badge(
    request: QueryRequest,
    scan: PoolScan,
    head_inputs: HeadInputs,
    rng: np.random.Generator,
    unreadable: Unreadable | None,
    gather_all: Gather,
) -> StreamedQuery:
    """A BADGE query over every candidate of ``scan`` (keep it to a stated size: the inputs of
    every candidate are held for the k-means++ seeding)."""
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    found: list[np.ndarray] = []
    for rows in _readable_chunks(scan, request.labels.size, unreadable, found):
        inputs, probs = head_inputs(rows)
        parts.append((rows, np.asarray(inputs), np.asarray(probs, dtype=np.float64)))
    gathered = gather_all((parts, found))
    everything = [part for rank_parts, _ in gathered for part in rank_parts]
    unread = [rows for _, rank_found in gathered for rows in rank_found]
    if not everything:
        return StreamedQuery(NO_INDICES, np.zeros(0), _sorted(unread))
    rows = np.concatenate([p[0] for p in everything])
    order = np.argsort(rows, kind="stable")  # one process's order, whoever computed what
    rows = rows[order]
    inputs = np.concatenate([p[1] for p in everything])[order]
    probs = np.concatenate([p[2] for p in everything])[order]
    classes = None
    if request.balanced:
        classes = predicted_labels(probs[None, :]) if request.label_free else request.labels[rows]
    chosen = badge_query(inputs, probs, request.query, rng, classes)
    norms = np.linalg.norm(gradient_embeddings(inputs[chosen], probs[chosen]), axis=1)
    return StreamedQuery(rows[chosen], norms, _sorted(unread))


def _sorted(parts: list[np.ndarray]) -> np.ndarray:
    return np.sort(np.concatenate(parts)).astype(np.int64) if parts else NO_INDICES
