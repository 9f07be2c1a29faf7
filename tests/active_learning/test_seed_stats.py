"""Comparisons over seeds, against the definitions written out here: the trapezoid sum, the
exact signed-rank distribution by enumerating every sign flip, the sample standard deviation."""

from __future__ import annotations

import csv
import itertools
import json
import statistics
from pathlib import Path

import numpy as np
import pytest

from active_learning import compare
from active_learning.seed_stats import (
    aulc,
    labels_to_reach,
    on_common_counts,
    paired_test,
    summarize,
)


def test_aulc_is_the_mean_of_the_curve_over_the_budget() -> None:
    x, y = np.array([10, 20, 40, 50]), np.array([0.5, 0.7, 0.8, 1.0])
    trapezoids = sum((y[i] + y[i + 1]) / 2 * (x[i + 1] - x[i]) for i in range(3))
    assert aulc(x, y) == pytest.approx(trapezoids / 40, rel=1e-12)
    assert aulc(np.array([10]), np.array([0.6])) == 0.6


def test_labels_to_reach_and_common_counts() -> None:
    x, y = np.array([10, 20, 30]), np.array([0.5, 0.9, 0.8])
    assert labels_to_reach(x, y, 0.85) == 20 and labels_to_reach(x, y, 0.95) is None
    counts, values = on_common_counts([(x, y), (np.array([10, 20]), np.array([0.6, 0.7]))])
    assert counts.tolist() == [10, 20, 30]
    assert values.tolist() == [[0.5, 0.9, 0.8], [0.6, 0.7, 0.7]]  # stopped early: kept


def exact_signed_rank_p(differences: np.ndarray) -> float:
    """Two-sided p of the Wilcoxon signed-rank statistic by every sign assignment (no ties)."""
    ranks = np.argsort(np.argsort(np.abs(differences))) + 1
    observed = ranks[differences > 0].sum()
    total = ranks.sum()
    statistics_ = [
        sum(r for r, s in zip(ranks, signs, strict=True) if s)
        for signs in itertools.product([0, 1], repeat=len(ranks))
    ]
    extreme = min(observed, total - observed)
    tail = sum(1 for w in statistics_ if w <= extreme or w >= total - extreme)
    return tail / len(statistics_)


def test_the_paired_p_value_is_the_exact_signed_rank_test() -> None:
    base = np.array([0.80, 0.82, 0.80, 0.85, 0.80, 0.81, 0.835])
    ours = base + np.array([0.012, 0.041, -0.007, 0.053, 0.036, 0.071, -0.004])  # no tied |d|
    wins, p = paired_test(ours, base)
    assert wins == 5
    assert p == pytest.approx(exact_signed_rank_p(ours - base), rel=1e-9)
    assert paired_test(base, base) == (0, None)


def curves(offset: float, seeds: range) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    x = np.array([10.0, 20.0, 30.0])
    return {s: (x, np.array([0.5, 0.6 + offset, 0.7 + offset]) + 0.01 * s) for s in seeds}


def test_summary_per_strategy() -> None:
    seeds = range(5)
    data = {"uniform": curves(0.0, seeds), "bald": curves(0.1, seeds)}
    data["bald"][4] = (np.array([10.0, 20.0, 30.0]), np.array([0.5, 0.5, 0.6]))  # one loss
    by_name = {s.strategy: s for s in summarize(data, target=0.75)}
    bald, uniform = by_name["bald"], by_name["uniform"]
    areas = [aulc(*data["bald"][s]) for s in seeds]
    assert bald.aulc_mean == pytest.approx(statistics.mean(areas))
    assert bald.aulc_std == pytest.approx(statistics.stdev(areas))
    assert (bald.wins_vs_uniform, bald.paired_seeds) == (4, 5)
    assert uniform.wins_vs_uniform is None and uniform.p_value_vs_uniform is None
    assert bald.reached == 4 and bald.labels_to_reach_mean == 30.0
    assert all(s.reached is None for s in summarize(data))  # no target: nothing to reach


def write_run(folder: Path, strategy: str, seed: int, label_free: bool, offset: float) -> Path:
    history = [
        {"labelled": n, "val_ap": 0.5 + offset + 0.01 * i + 0.001 * seed}
        for i, n in enumerate((10, 20, 30))
    ]
    path = folder / f"{strategy}-{seed}-{label_free}" / "al_results.json"
    path.parent.mkdir(parents=True)
    config = {"seed": seed, "label_free": label_free}
    path.write_text(json.dumps({"strategy": strategy, "config": config, "history": history}))
    return path.parent


def test_the_command_collects_runs_and_writes_csv_json_and_plot(tmp_path: Path) -> None:
    runs = [
        write_run(tmp_path / "runs", name, seed, free, offset)
        for name, free, offset in (("uniform", False, 0.0), ("loss_weighted_bald", False, 0.1),
                                   ("loss_weighted_bald", True, 0.05))
        for seed in range(4)
    ]  # fmt: skip
    out = tmp_path / "out"
    assert compare.main([*map(str, runs), "--out", str(out), "--target", "0.6"]) == 0
    text = (out / "seed_comparison.csv").read_text().splitlines()
    rows = {r["strategy"]: r for r in csv.DictReader(text)}
    assert set(rows) == {"uniform", "loss_weighted_bald", "loss_weighted_bald (label-free)"}
    assert rows["loss_weighted_bald"]["wins_vs_uniform"] == "4"
    assert rows["loss_weighted_bald"]["seeds"] == "4"
    summary = json.loads((out / "seed_comparison.json").read_text())
    assert summary["curves"]["uniform"]["labelled"] == [10, 20, 30]
    assert (out / "seed_comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert compare.main([*map(str, runs[:1]), str(runs[0]), "--out", str(out)]) == 2
    assert compare.main([str(tmp_path / "nothing"), "--out", str(out)]) == 2
