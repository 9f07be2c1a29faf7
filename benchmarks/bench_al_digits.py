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

from active_learning.config import ALConfig
from active_learning.loop import run_active_learning
from active_learning.mlp_learner import MLPLearner, digits_task
from active_learning.seed_comparison import LABEL_FREE, write_seed_comparison
from active_learning.seed_stats import curve_from_history, summarize

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


Variant = tuple[str, bool]  # (strategy, label_free)
COMPARED: tuple[Variant, ...] = (
    *((name, False) for name in STRATEGIES),
    ("loss_weighted_bald", False), ("loss_weighted_bald", True),
    ("power_bald", False), ("badge", False),
)  # fmt: skip


def variant_name(variant: Variant) -> str:
    strategy, label_free = variant
    return strategy + (LABEL_FREE if label_free else "")


def run_histories(
    seeds: Sequence[int],
    variants: Sequence[Variant],
    config: ALConfig = CONFIG,
    out: Path | None = None,
    **learner_options,
) -> dict[str, dict[int, list[dict]]]:
    """Each variant's history per seed, with the test split's accuracy and AP in ``extra``;
    every variant of a seed starts from the same initial set and warm-up."""
    histories: dict[str, dict[int, list[dict]]] = {variant_name(v): {} for v in variants}
    for seed in seeds:
        task = digits_task(seed=seed)
        learner = MLPLearner(task.pool_x, task.pool_y, task.val_x, task.val_y, **learner_options)

        def test_metrics(record, learner, task=task) -> dict[str, float]:
            found = learner.evaluate(task.test_x, task.test_y)
            return {"test_acc": found["acc"], "test_ap": found["ap"]}

        for variant in variants:
            strategy, label_free = variant
            seeded = ALConfig(**{**config.to_dict(), "seed": seed, "acq_func": strategy,
                                 "label_free": label_free})  # fmt: skip
            folder = None if out is None else out / f"seed{seed}" / variant_name(variant)
            result = run_active_learning(
                learner, task.pool_y, seeded, folder, on_iteration=test_metrics, resume=False,
                log=None,
            )  # fmt: skip
            histories[variant_name(variant)][seed] = result.history
    return histories


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
    variants = [(s, False) for s in strategies]
    histories = run_histories(seeds, variants, config, out, **learner_options)
    return {s: [labels_to_reach(histories[s][seed], target) for seed in seeds] for s in strategies}


def full_data_ap(seed: int, epochs: int = 60) -> float:
    """Test AP of the MLP trained on the whole pool (the reference of "labels to reach")."""
    task = digits_task(seed=seed)
    learner = MLPLearner(task.pool_x, task.pool_y, task.val_x, task.val_y)
    learner.reset(seed)
    everything = np.arange(len(task.pool_y))
    for epoch in range(epochs):
        learner.train_epoch(everything, np.ones(everything.size), seed * 1000 + epoch)
    return learner.evaluate(task.test_x, task.test_y)["ap"]


def compare_over_seeds(
    seeds: Sequence[int], out: Path, fraction: float, config: ALConfig = CONFIG
) -> list:
    """Every compared variant over ``seeds``: the seed comparison (test AP) written to
    ``out``; returns the summaries."""
    histories = run_histories(seeds, COMPARED, config)
    reference = float(np.mean([full_data_ap(seed) for seed in seeds]))
    curves = {
        name: {seed: curve_from_history(h, "test_ap") for seed, h in by_seed.items()}
        for name, by_seed in histories.items()
    }
    target = fraction * reference
    write_seed_comparison(curves, out, target, metric="test AP")
    print(
        f"full-data test AP (mean over seeds) {reference:.4f}; target {fraction} x = {target:.4f}"
    )
    return summarize(curves, target)


def mean_labels(values: Sequence[int | None], cap: int) -> float:
    """Mean over seeds, a seed that never reached the target counted as ``cap``."""
    return float(np.mean([cap if v is None else v for v in values]))


def main(argv: Sequence[str] | None = None, config: ALConfig = CONFIG) -> None:
    """The benchmark as the command line runs it; ``config`` replaces the loop's settings."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--target", type=float, default=0.93, help="test accuracy to reach")
    parser.add_argument("--out", type=Path, help="write results and comparison plots here")
    parser.add_argument(
        "--comparison_seeds", type=int, default=10,
        help="seeds of the comparison over seeds (0: skip it) (10)",
    )  # fmt: skip
    parser.add_argument(
        "--comparison_out", type=Path, default=Path("al_digits_comparison"),
        help="folder of seed_comparison.{csv,json,png} (./al_digits_comparison)",
    )  # fmt: skip
    parser.add_argument(
        "--fraction", type=float, default=0.98,
        help="labels to reach this fraction of the full-data test AP (0.98)",
    )  # fmt: skip
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
    if args.comparison_seeds:
        print_comparison(args.comparison_seeds, args.comparison_out, args.fraction, config)


def print_comparison(seeds: int, out: Path, fraction: float, config: ALConfig) -> None:
    """The comparison over ``seeds`` seeds, as a table (and files in ``out``)."""
    print(f"\ncomparison over {seeds} seeds (test AP; written to {out}):")
    start = time.perf_counter()
    summaries = compare_over_seeds(range(seeds), out, fraction, config)
    print(
        f"{'strategy':<34} {'AULC mean':>9} {'std':>7} {'reached':>7} {'labels':>7} "
        f"{'wins':>6} {'p':>7}"
    )
    for s in summaries:
        labels = "-" if s.labels_to_reach_mean is None else f"{s.labels_to_reach_mean:.1f}"
        wins = "-" if s.wins_vs_uniform is None else f"{s.wins_vs_uniform}/{s.paired_seeds}"
        p = "-" if s.p_value_vs_uniform is None else f"{s.p_value_vs_uniform:.3f}"
        print(
            f"{s.strategy:<34} {s.aulc_mean:9.4f} {s.aulc_std:7.4f} "
            f"{s.reached:>4}/{len(s.seeds):<2} {labels:>7} {wins:>6} {p:>7}"
        )
    print(f"({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
