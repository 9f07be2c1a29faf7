"""Sanity benchmark in the spirit of Gal et al. 2017 (Deep Bayesian Active Learning with Image
Data), on a dataset no one here made: scikit-learn's 8x8 digits as a binary task (is the digit
3, 5, 8 or 9?) with a small dropout MLP. For each strategy and seed: how many labels until the
test accuracy first reaches the target. MC-dropout strategies should need fewer than uniform.

python benchmarks/bench_al_digits.py [--seeds 0 1 2 3 4] [--target 0.93]
    [--out DIR]   (also write every run's results and a comparison plot per seed)
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from active_learning.compare import run_strategies
from active_learning.config import ALConfig
from active_learning.loop import run_active_learning
from active_learning.mlp_learner import MLPLearner, digits_task

STRATEGIES = ("uniform", "max_entropy", "bald", "var_ratios", "mean_std")
CONFIG = ALConfig(
    num_samples_per_class=5,  # 10 initial labels
    query=10,
    al_iter=20,  # up to 210 labels
    al_niter_warmup=30,
    niter=10,
    dropout_iter=10,
    subsample_size=0,  # score the whole unlabelled pool
    earlystop_epoch=0,
)


def labels_to_reach(history: Sequence[dict], target: float) -> int | None:
    """Labelled count at the first iteration whose test accuracy reaches ``target``."""
    for record in history:
        if record["extra"]["test_acc"] >= target:
            return int(record["labelled"])
    return None


def run_benchmark(
    seeds: Sequence[int],
    strategies: Sequence[str] = STRATEGIES,
    config: ALConfig = CONFIG,
    target: float = 0.93,
    out: Path | None = None,
    **learner_options,
) -> dict[str, list[int | None]]:
    """Labels needed per strategy, one entry per seed (None: target not reached).

    ``learner_options`` go to :class:`MLPLearner` (hidden, dropout, lr, batch_size).
    """
    needed: dict[str, list[int | None]] = {s: [] for s in strategies}
    for seed in seeds:
        task = digits_task(seed=seed)
        learner = MLPLearner(task.pool_x, task.pool_y, task.val_x, task.val_y, **learner_options)

        def test_accuracy(record, learner, task=task) -> dict[str, float]:
            return {"test_acc": learner.evaluate(task.test_x, task.test_y)["acc"]}

        seeded = ALConfig(**{**config.to_dict(), "seed": seed})
        if out is not None:
            results = run_strategies(
                learner, task.pool_y, seeded, out / f"seed{seed}", strategies,
                on_iteration=test_accuracy, resume=False, log=None,
            )  # fmt: skip
            histories = {s: r.history for s, r in results.items()}
        else:
            histories = {
                s: run_active_learning(
                    learner, task.pool_y, seeded, strategy=s, on_iteration=test_accuracy, log=None
                ).history
                for s in strategies
            }
        for strategy in strategies:
            needed[strategy].append(labels_to_reach(histories[strategy], target))
    return needed


def mean_labels(values: Sequence[int | None], cap: int) -> float:
    """Mean over seeds, a seed that never reached the target counted as ``cap``."""
    return float(np.mean([cap if v is None else v for v in values]))


def main(argv: Sequence[str] | None = None, config: ALConfig = CONFIG) -> None:
    """The benchmark as the command line runs it; ``config`` replaces the loop's settings."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--target", type=float, default=0.93, help="test accuracy to reach")
    parser.add_argument("--out", type=Path, help="write results and comparison plots here")
    args = parser.parse_args(argv)
    task = digits_task(seed=0)
    print(
        f"digits, binary (3/5/8/9 vs rest): pool {len(task.pool_y)}, val {len(task.val_y)}, "
        f"test {len(task.test_y)}; MLP 64-64-dropout(0.5)-1, T={config.dropout_iter}; "
        f"{2 * config.num_samples_per_class} initial labels, {config.query} per query, "
        f"{config.al_iter} queries; the MLP runs on 1 torch thread"
    )
    start = time.perf_counter()
    needed = run_benchmark(args.seeds, config=config, target=args.target, out=args.out)
    seconds = time.perf_counter() - start
    cap = 2 * config.num_samples_per_class + config.al_iter * config.query + config.query
    seed_cols = " ".join(f"{'seed ' + str(s):>8}" for s in args.seeds)
    print(f"\nlabels to reach test accuracy {args.target:.2f} ('>' = not reached, counted {cap})")
    print(f"{'strategy':<12} {seed_cols} {'mean':>8} {'uniform/x':>10}")
    base = mean_labels(needed["uniform"], cap)
    for strategy, values in needed.items():
        cells = " ".join(f"{'>' + str(cap - config.query) if v is None else v:>8}" for v in values)
        mean = mean_labels(values, cap)
        print(f"{strategy:<12} {cells} {mean:8.1f} {base / mean:10.2f}")
    print(f"\n{len(args.seeds)} seeds x {len(needed)} strategies in {seconds:.1f} s")


if __name__ == "__main__":
    main()
