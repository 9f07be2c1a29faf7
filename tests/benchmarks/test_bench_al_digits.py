"""benchmarks/bench_al_digits.py with a tiny loop (two queries of one-epoch MLPs, two seeds): the
table has a row per strategy and a column per seed, and its means and uniform/x ratios follow
from its cells (whichever strategies reach the target)."""

from __future__ import annotations

import re

import pytest

from tests.benchmarks.scripts import NUMBER, load

SEEDS = (0, 1)


def test_tiny_run_prints_a_consistent_table(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load("bench_al_digits")
    tiny = {"al_iter": 2, "niter": 1, "al_niter_warmup": 1, "dropout_iter": 2}
    config = bench.ALConfig(**{**bench.CONFIG.to_dict(), **tiny})
    bench.main(["--seeds", *map(str, SEEDS), "--target", "0.7"], config=config)
    lines = capsys.readouterr().out.splitlines()
    initial = 2 * config.num_samples_per_class
    cap = initial + config.al_iter * config.query + config.query
    loop = f"T={config.dropout_iter}; {initial} initial labels, {config.query} per query"
    assert loop in lines[0], lines[0]
    assert lines[1] == ""
    assert lines[2] == f"labels to reach test accuracy 0.70 ('>' = not reached, counted {cap})"
    seed_columns = [word for seed in SEEDS for word in ("seed", str(seed))]
    assert lines[3].split() == ["strategy", *seed_columns, "mean", "uniform/x"]
    rows = [line.split() for line in lines[4 : 4 + len(bench.STRATEGIES)]]
    assert [row[0] for row in rows] == list(bench.STRATEGIES)
    means = {}
    reachable = range(initial, cap, config.query)  # the labelled counts after each query
    for name, *cells, mean, ratio in rows:
        assert len(cells) == len(SEEDS)
        counted = []
        for cell in cells:
            if cell.startswith(">"):
                assert cell == f">{cap - config.query}"
                counted.append(cap)
            else:
                assert int(cell) in reachable
                counted.append(int(cell))
        assert mean == f"{sum(counted) / len(counted):.1f}"
        means[name] = sum(counted) / len(counted)
        assert ratio == f"{means['uniform'] / means[name]:.2f}"
    assert lines[4 + len(rows)] == ""
    assert re.fullmatch(
        rf"{len(SEEDS)} seeds x {len(bench.STRATEGIES)} strategies in {NUMBER} s", lines[-1]
    )
