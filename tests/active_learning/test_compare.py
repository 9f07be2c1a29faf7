"""Several strategies with one seed, on one plot with the uniform baseline; the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from active_learning import compare
from active_learning.config import ALConfig
from active_learning.results import COMPARISON_CSV, COMPARISON_PNG, RESULTS_JSON

from .conftest import ScriptedLearner
from .test_seed_stats import write_run

LABELS = np.array([0, 1] * 30)


def config(**changes) -> ALConfig:
    base = dict(num_samples_per_class=3, query=4, al_iter=2, al_niter_warmup=1, niter=1)
    return ALConfig(**{**base, **changes})


def test_comparison_strategies_put_uniform_first() -> None:
    assert compare.comparison_strategies(["bald"]) == ["uniform", "bald"]
    assert compare.comparison_strategies(["bald", "uniform", "bald"]) == ["uniform", "bald"]


def test_acq_func_zero_runs_the_five_plain_strategies(tmp_path: Path) -> None:
    finished = []
    results = compare.run(
        ScriptedLearner(LABELS.size), LABELS, config(acq_func="0"), tmp_path, log=None,
        on_finish=lambda result, learner: finished.append(result.strategy),
    )  # fmt: skip
    plain = ["uniform", "max_entropy", "bald", "var_ratios", "mean_std"]
    assert list(results) == finished == plain
    initial = {tuple(r.labelled[:6]) for r in results.values()}
    assert len(initial) == 1  # the same seed: the same initial set for every strategy
    assert len({tuple(r.labelled) for r in results.values()}) > 1  # different queries
    for strategy in plain:
        run = json.loads((tmp_path / strategy / RESULTS_JSON).read_text())
        assert run["strategy"] == strategy and len(run["history"]) == 3
    assert (tmp_path / COMPARISON_PNG).read_bytes()[:4] == b"\x89PNG"
    rows = (tmp_path / COMPARISON_CSV).read_text().splitlines()
    assert rows[0].startswith("strategy,labelled,final_val_ap")
    assert [r.split(",")[0] for r in rows[1:]] == plain


def test_single_strategy_runs_in_the_folder(tmp_path: Path) -> None:
    results = compare.run(
        ScriptedLearner(LABELS.size), LABELS, config(acq_func="bald"), tmp_path, log=None
    )
    assert list(results) == ["bald"] and (tmp_path / RESULTS_JSON).exists()


def test_run_strategies_adds_the_baseline(tmp_path: Path) -> None:
    results = compare.run_strategies(
        ScriptedLearner(LABELS.size), LABELS, config(), tmp_path, ["loss_weighted_bald"], log=None
    )
    assert list(results) == ["uniform", "loss_weighted_bald"]
    text = (tmp_path / COMPARISON_CSV).read_text()
    assert "loss_weighted_bald" in text and ",True" in text  # simulation flagged


def test_cli_draws_saved_runs(tmp_path: Path, capsys) -> None:
    compare.run_strategies(
        ScriptedLearner(LABELS.size), LABELS, config(), tmp_path / "runs", ["bald"], log=None
    )
    out = tmp_path / "plot"
    code = compare.main(
        [str(tmp_path / "runs" / "uniform"), str(tmp_path / "runs" / "bald" / RESULTS_JSON),
         "--out", str(out)]
    )  # fmt: skip
    assert code == 0 and (out / COMPARISON_PNG).exists()
    assert str(out / COMPARISON_PNG) in capsys.readouterr().out
    assert compare.main([str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "no results file" in capsys.readouterr().err


def test_runs_of_several_seeds_are_compared_over_the_seeds(tmp_path: Path) -> None:
    runs = [
        write_run(tmp_path / "runs", name, seed, False, offset)
        for name, offset in (("uniform", 0.0), ("bald", 0.1))
        for seed in range(3)
    ]
    assert compare.main([*map(str, runs), "--out", str(tmp_path / "out")]) == 0
    summary = json.loads((tmp_path / "out" / "seed_comparison.json").read_text())
    bald = next(s for s in summary["strategies"] if s["strategy"] == "bald")
    assert bald["seeds"] == [0, 1, 2] and bald["wins_vs_uniform"] == 3
