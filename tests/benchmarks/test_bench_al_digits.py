"""benchmarks/bench_al_digits.py with a tiny loop (two queries of one-epoch MLPs, two seeds): the
table has a row per strategy and a column per seed, and its means and uniform/x ratios follow
from its cells (whichever strategies reach the target)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from tests.benchmarks.scripts import NUMBER, load

SEEDS = (0, 1)


def test_tiny_run_prints_a_consistent_table(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bench = load("bench_al_digits")
    tiny = {"al_iter": 2, "niter": 1, "al_niter_warmup": 1, "dropout_iter": 2}
    config = bench.ALConfig(**{**bench.CONFIG.to_dict(), **tiny})
    out = tmp_path / "comparison"
    argv = ["--seeds", *map(str, SEEDS), "--target", "0.7", "--comparison_seeds", "3"]
    bench.main([*argv, "--comparison_out", str(out)], config=config)
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
        rf"{len(SEEDS)} seeds x {len(bench.STRATEGIES)} strategies in {NUMBER} s",
        lines[5 + len(rows)],
    )
    rest = lines[6 + len(rows) :]
    assert rest[0] == "" and rest[1] == f"comparison over 3 seeds (test AP; written to {out}):"
    assert rest[2].startswith("full-data test AP (mean over seeds) ")
    assert rest[3].split() == ["strategy", "AULC", "mean", "std", "reached", "labels", "wins", "p"]
    table = rest[4 : 4 + len(bench.COMPARED)]
    written = {r["strategy"]: r for r in csv.DictReader((out / "seed_comparison.csv").open())}
    assert [line[:34].strip() for line in table] == [bench.variant_name(v) for v in bench.COMPARED]
    for line in table:
        name, cells = line[:34].strip(), line[34:].split()
        assert cells[0] == f"{float(written[name]['aulc_mean']):.4f}"  # printed = written
        if name == "uniform":
            assert cells[-2:] == ["-", "-"]
        else:
            assert cells[-2] == f"{written[name]['wins_vs_uniform']}/3"
    assert re.fullmatch(rf"\({NUMBER} s\)", rest[4 + len(table)])
    assert (out / "seed_comparison.png").is_file() and (out / "seed_comparison.json").is_file()
