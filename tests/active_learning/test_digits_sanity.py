"""Fast version of benchmarks/bench_al_digits.py: on scikit-learn's digits, MC-dropout
strategies need at least 10% fewer labels than uniform to reach the target accuracy, on average
over 5 seeds, every MC-dropout run reaching it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_al_digits.py"


def load_benchmark():
    spec = importlib.util.spec_from_file_location("bench_al_digits", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_labels_to_reach() -> None:
    bench = load_benchmark()
    history = [
        {"labelled": 10, "extra": {"test_acc": 0.8}},
        {"labelled": 20, "extra": {"test_acc": 0.95}},
        {"labelled": 30, "extra": {"test_acc": 0.90}},
    ]
    assert bench.labels_to_reach(history, 0.9) == 20
    assert bench.labels_to_reach(history, 0.99) is None
    assert bench.mean_labels([20, None], cap=50) == 35.0


def test_mc_dropout_strategies_beat_uniform_on_digits() -> None:
    bench = load_benchmark()
    config = dataclasses.replace(bench.CONFIG, al_iter=8, query=15)  # up to 130 labels
    cap = 2 * config.num_samples_per_class + (config.al_iter + 1) * config.query
    needed = bench.run_benchmark(
        range(5), ("uniform", "max_entropy", "bald", "var_ratios"), config, target=0.92
    )
    # every MC-dropout run reaches the target, so no strategy's mean is propped up by the cap;
    # a uniform run that does not reach it counts as the cap: a lower bound of what it needs,
    # which only makes beating uniform harder
    assert all(None not in runs for s, runs in needed.items() if s != "uniform"), needed
    means = {s: bench.mean_labels(v, cap) for s, v in needed.items()}
    for strategy in ("max_entropy", "bald", "var_ratios"):
        # at least 10% fewer labels than uniform (measured: 18-23% fewer, 79-85 vs 103)
        assert means[strategy] <= 0.9 * means["uniform"], means
