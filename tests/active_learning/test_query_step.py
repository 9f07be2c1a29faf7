"""The query streamed in chunks (and shared by processes) picks what scoring the pool whole
picks; ties, subsamples and memory.

The reference is computed in the test from the whole arrays: every candidate's probabilities
at once, the registry's score over all of them, and the order "highest score, then lowest tie
key" by ``np.lexsort``.
"""

from __future__ import annotations

import itertools
import threading
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from active_learning.acquisition import ORIGINAL, get_acquisition, score
from active_learning.mc_dropout import draw_masks, linear_head_probabilities
from active_learning.query_step import PoolScan, QueryRequest, stream_query
from active_learning.selection import candidate_chunks, select_query, tie_keys

POOL, WIDTH, PASSES = 3000, 16, 8


@pytest.fixture(scope="module")
def pool() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    features = rng.standard_normal((POOL, WIDTH)).astype(np.float32)
    weight = rng.standard_normal(WIDTH).astype(np.float32)
    masks = draw_masks(PASSES, WIDTH, 0.5, seed=3)
    labels = (features[:, 0] + 0.5 * rng.standard_normal(POOL) > 0).astype(np.int64)
    taken = np.sort(rng.choice(POOL, 400, replace=False))
    return {
        "features": features,
        "weight": weight,
        "masks": masks,
        "labels": labels,
        "taken": taken,
    }


def probabilities(pool: dict[str, Any]) -> Callable[[np.ndarray], np.ndarray]:
    """Shared masks, each product summed row by row: an item's probabilities are the same
    bits whichever items are asked with it (a matrix product may round differently by an ulp
    with the shape, which would test the BLAS, not the selection)."""
    folded = (pool["masks"] * pool["weight"]).astype(np.float64)  # [T, D]

    def probs(rows: np.ndarray) -> np.ndarray:
        logits = (pool["features"][rows][None, :, :] * folded[:, None, :]).sum(axis=-1) + 0.1
        return 1.0 / (1.0 + np.exp(-logits))

    return probs


def request(pool: dict[str, Any], name: str, balanced: bool, label_free: bool) -> QueryRequest:
    return QueryRequest(get_acquisition(name), 37, balanced, label_free, pool["labels"])


def reference(pool: dict[str, Any], name: str, label_free: bool) -> tuple[np.ndarray, np.ndarray]:
    """Unbalanced: the whole unlabelled pool scored at once, ranked by lexsort."""
    rows = np.setdiff1d(np.arange(POOL), pool["taken"])
    probs = probabilities(pool)(rows)
    acquisition = get_acquisition(name)
    labels = pool["labels"][rows] if acquisition.needs_labels and not label_free else None
    scores = score(name, probs, labels, label_free=label_free)
    order = np.lexsort((tie_keys(11, rows), -scores))[:37]
    return rows[order], scores[order]


def streamed(pool, name, balanced, label_free, chunk_rows, rank=0, world=1, gather=None):
    scan = PoolScan(pool["taken"], 0, 5, chunk_rows=chunk_rows, rank=rank, world=world)
    return stream_query(
        request(pool, name, balanced, label_free),
        scan,
        probabilities(pool),
        tie_seed=11,
        select_rng=np.random.default_rng(2),
        passes=PASSES,
        gather=gather,
    )


@pytest.mark.parametrize("name", ORIGINAL)
@pytest.mark.parametrize("chunk_rows", [POOL, 501, 64])
def test_chunks_pick_what_the_whole_pool_picks(pool, name: str, chunk_rows: int) -> None:
    label_free = name.startswith("loss_weighted") and chunk_rows == 64
    expected_rows, expected_scores = reference(pool, name, label_free)
    found = streamed(pool, name, False, label_free, chunk_rows)
    np.testing.assert_array_equal(found.indices, expected_rows)
    np.testing.assert_array_equal(found.scores, expected_scores)  # bounds over all chunks


@pytest.mark.parametrize("name", ["bald", "var_ratios", "loss_weighted_mean_std", "uniform"])
@pytest.mark.parametrize("label_free", [False, True])
def test_balanced_chunks_equal_the_in_memory_selection(pool, name: str, label_free: bool) -> None:
    rows = np.setdiff1d(np.arange(POOL), pool["taken"])
    probs = probabilities(pool)(rows)
    acquisition = get_acquisition(name)
    labels = pool["labels"][rows] if acquisition.needs_labels and not label_free else None
    scores = score(name, probs, labels, label_free=label_free)
    classes = (probs.mean(axis=0) >= 0.5).astype(int) if label_free else pool["labels"][rows]
    chosen, chosen_scores = select_query(
        rows, scores, 37, np.random.default_rng(2), classes=classes
    )
    rng = np.random.default_rng(2)  # select_query draws its tie seed first, then selects
    found = stream_query(
        request(pool, name, True, label_free),
        PoolScan(pool["taken"], 0, 5, chunk_rows=97),
        probabilities(pool),
        tie_seed=int(rng.integers(2**63)),
        select_rng=rng,
        passes=PASSES,
    )
    np.testing.assert_array_equal(found.indices, chosen)
    np.testing.assert_array_equal(found.scores, chosen_scores)
    per_class = np.bincount(classes[np.searchsorted(rows, chosen)], minlength=2)
    assert abs(int(per_class[0]) - int(per_class[1])) <= 1


class ThreadGather:
    """all_gather_object for threads standing in for processes (a barrier, no timing)."""

    def __init__(self, world: int) -> None:
        self.world, self.slots = world, [None] * world
        self.barrier = threading.Barrier(world)

    def for_rank(self, rank: int) -> Callable[[Any], list[Any]]:
        def gather(obj: Any) -> list[Any]:
            self.slots[rank] = obj
            self.barrier.wait()
            out = list(self.slots)
            self.barrier.wait()  # nobody overwrites a slot before every rank has read it
            return out

        return gather


def in_threads(world: int, run: Callable[[int, Callable], Any]) -> list[Any]:
    """``run(rank, gather)`` for every rank, each in a thread, exchanging through a barrier."""
    exchange, results = ThreadGather(world), [None] * world

    def one(rank: int) -> None:
        results[rank] = run(rank, exchange.for_rank(rank))

    threads = [threading.Thread(target=one, args=(rank,)) for rank in range(world)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("name", ["bald", "loss_weighted_bald", "uniform"])
def test_processes_sharing_the_chunks_pick_what_one_picks(pool, world: int, name: str) -> None:
    one = streamed(pool, name, True, False, 101)
    results = in_threads(
        world, lambda rank, gather: streamed(pool, name, True, False, 101, rank, world, gather)
    )
    for found in results:
        np.testing.assert_array_equal(found.indices, one.indices)
        np.testing.assert_array_equal(found.scores, one.scores)


def test_unreadable_candidates_are_left_out_and_reported(pool) -> None:
    broken = np.array([5, 17, 2999])

    def unreadable(rows: np.ndarray) -> np.ndarray:
        return np.isin(rows, broken)

    def probs(rows: np.ndarray) -> np.ndarray:
        assert not np.isin(rows, broken).any()  # never passed through the network
        return probabilities(pool)(rows)

    scan = PoolScan(np.array([17]), 0, 5, chunk_rows=128)  # 17 is labelled: not a candidate
    found = stream_query(
        request(pool, "loss_weighted_bald", False, False),
        scan,
        probs,
        tie_seed=1,
        select_rng=np.random.default_rng(0),
        unreadable=unreadable,
    )
    np.testing.assert_array_equal(found.unreadable, [5, 2999])
    assert not np.isin(found.indices, broken).any() and 17 not in found.indices


def test_non_finite_probabilities_are_an_error(pool) -> None:
    scan = PoolScan(pool["taken"], 0, 5, chunk_rows=500)
    with pytest.raises(ValueError, match="non-finite"):
        stream_query(
            request(pool, "bald", False, False),
            scan,
            lambda rows: np.full((PASSES, rows.size), np.nan),
            tie_seed=1,
            select_rng=np.random.default_rng(0),
        )


def test_tie_keys_are_uniform_and_a_function_of_the_item() -> None:
    rows = np.arange(200_000)
    keys = tie_keys(7, rows)
    np.testing.assert_array_equal(np.concatenate([tie_keys(7, r) for r in np.split(rows, 8)]), keys)
    np.testing.assert_array_equal(tie_keys(7, rows[::-1]), keys[::-1])
    assert ((keys >= 0) & (keys < 1)).all()
    counts = np.histogram(keys, bins=20, range=(0, 1))[0]
    np.testing.assert_allclose(counts / rows.size, 0.05, atol=0.002)  # 5 sigma is 0.0024
    assert abs(np.corrcoef(keys[:-1], keys[1:])[0, 1]) < 0.01  # neighbours independent
    other = tie_keys(8, rows)
    assert abs(np.corrcoef(keys, other)[0, 1]) < 0.01  # seeds independent


def test_uniform_queries_are_uniform_over_seeds() -> None:
    counts = np.zeros(40)
    taken = np.array([3, 9])
    for seed in range(1500):
        found = stream_query(
            QueryRequest(get_acquisition("uniform"), 5, False, False, np.zeros(40, dtype=int)),
            PoolScan(taken, 0, 0, chunk_rows=7),
            lambda rows: np.zeros((0, rows.size)),
            tie_seed=seed,
            select_rng=np.random.default_rng(seed),
        )
        assert np.unique(found.indices).size == 5 and not np.isin(found.indices, taken).any()
        counts[found.indices] += 1
    free = np.setdiff1d(np.arange(40), taken)
    np.testing.assert_allclose(counts[free] / 1500, 5 / 38, atol=0.03)  # 3.5 sigma
    assert counts[taken].sum() == 0


@pytest.mark.parametrize("chunk_rows", [1, 13, 10_000])
def test_a_subsample_does_not_depend_on_the_chunks(chunk_rows: int) -> None:
    taken = np.arange(0, 1000, 3)
    whole = np.concatenate(list(candidate_chunks(1000, taken, 50, 4, 10_000)))
    chunks = list(candidate_chunks(1000, taken, 50, 4, chunk_rows))
    assert all(c.size <= chunk_rows for c in chunks)
    np.testing.assert_array_equal(np.concatenate(chunks), whole)
    assert whole.size == 50 and np.unique(whole).size == 50 and not np.isin(whole, taken).any()


def test_subsamples_are_uniform_over_seeds() -> None:
    taken = np.arange(0, 60, 2)
    counts = np.zeros(60)
    for seed in range(1500):
        counts[np.concatenate(list(candidate_chunks(60, taken, 6, seed, 7)))] += 1
    np.testing.assert_allclose(counts[1::2] / 1500, 6 / 30, atol=0.035)  # 3.4 sigma
    assert counts[::2].sum() == 0


def allocated_peak(pool_size: int) -> int:
    rng = np.random.default_rng(0)
    features = rng.standard_normal((pool_size, 8)).astype(np.float32)
    labels = rng.integers(0, 2, pool_size)
    weight, masks = np.ones(8, np.float32), draw_masks(10, 8, 0.5, 0)
    tracemalloc.start()
    try:
        stream_query(
            QueryRequest(get_acquisition("loss_weighted_bald"), 50, True, False, labels),
            PoolScan(np.arange(0, pool_size, 10), 0, 0, chunk_rows=4096),
            lambda rows: linear_head_probabilities(features, weight, 0.0, masks, indices=rows),
            tie_seed=0,
            select_rng=np.random.default_rng(0),
        )
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_memory_a_query_allocates_does_not_grow_with_the_pool() -> None:
    small, large = allocated_peak(40_000), allocated_peak(160_000)
    # Allocations are deterministic: the chunk's buffers, the kept candidates, the labelled
    # list (1 in 10 here, 128 KB at 160k). A pool-sized array would make it 4x.
    assert large < 1.25 * small, (small, large)


@pytest.mark.parametrize("name", ["power_bald", "softmax_mean_std", "softrank_loss_weighted_bald"])
@pytest.mark.parametrize("balanced", [False, True])
def test_a_sampled_query_does_not_depend_on_chunks_or_ranks(pool, name: str, balanced: bool):
    def run(chunk_rows, rank=0, world=1, gather=None):
        return stream_query(
            QueryRequest(get_acquisition(name), 37, balanced, False, pool["labels"], 0.5),
            PoolScan(pool["taken"], 0, 5, chunk_rows=chunk_rows, rank=rank, world=world),
            probabilities(pool),
            tie_seed=11,
            select_rng=np.random.default_rng(2),
            gather=gather,
            sample_seed=9,
        )

    whole = run(POOL)
    assert np.unique(whole.indices).size == 37 and not np.isin(whole.indices, pool["taken"]).any()
    np.testing.assert_array_equal(run(64).indices, whole.indices)
    exchange, results = ThreadGather(2), [None, None]
    threads = [
        threading.Thread(
            target=lambda r=r: results.__setitem__(r, run(97, r, 2, exchange.for_rank(r)))
        )
        for r in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for found in results:
        np.testing.assert_array_equal(found.indices, whole.indices)
    # the scores reported are the strategy's own, not the perturbed ones
    rows = np.setdiff1d(np.arange(POOL), pool["taken"])
    acquisition = get_acquisition(name)
    labels = pool["labels"][rows] if acquisition.needs_labels else None
    own = score(name, probabilities(pool)(rows), labels)
    np.testing.assert_array_equal(whole.scores, own[np.searchsorted(rows, whole.indices)])


def plackett_luce_inclusion(weights: np.ndarray, k: int) -> np.ndarray:
    """P(item in the first k draws without replacement, each draw P ~ weight): by enumerating
    every ordered draw (the definition, for a handful of items)."""
    inclusion = np.zeros(weights.size)
    for order in itertools.permutations(range(weights.size), k):
        left, p = weights.sum(), 1.0
        for item in order:
            p *= weights[item] / left
            left -= weights[item]
        inclusion[list(order)] += p
    return inclusion


@pytest.mark.parametrize(
    ("mode", "temperature"), [("power", 1.0), ("power", 0.5), ("softmax", 0.25), ("softrank", 1.0)]
)
def test_sampling_frequencies_follow_the_stated_distribution(mode: str, temperature: float):
    # five candidates, each with a constant probability over the passes: max entropy scores them
    probs = np.tile(np.array([0.01, 0.03, 0.08, 0.2, 0.45]), (3, 1))
    scores = score("max_entropy", probs)
    if mode == "power":
        weights = scores ** (1 / temperature)
    elif mode == "softmax":
        weights = np.exp(scores / temperature)
    else:  # rank 1 = the highest score
        ranks = np.empty(5)
        ranks[np.argsort(-scores)] = np.arange(1, 6)
        weights = ranks ** (-1 / temperature)
    draws = 2000
    for k in (1, 2):
        counts = np.zeros(5)
        for seed in range(draws):
            found = stream_query(
                QueryRequest(
                    get_acquisition(f"{mode}_max_entropy"),
                    k,
                    False,
                    False,
                    np.zeros(5, int),
                    temperature,
                ),
                PoolScan(np.zeros(0, dtype=np.int64), 0, 0, chunk_rows=2),
                lambda rows: probs[:, rows],
                tie_seed=seed,
                select_rng=np.random.default_rng(seed),
                sample_seed=seed,
            )
            assert np.unique(found.indices).size == k
            counts[found.indices] += 1
        expected = plackett_luce_inclusion(weights, k)
        spread = np.sqrt(expected * (1 - expected) / draws)
        assert (np.abs(counts / draws - expected) <= 4 * spread).all(), (k, counts, expected)
