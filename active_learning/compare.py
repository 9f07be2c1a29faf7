"""Several strategies with the same seed, drawn on one plot with the uniform baseline.

:func:`run` is what a training entry point calls: one strategy, or the five plain ones for
``--acq_func 0``. Every strategy of a comparison starts from the same initial set and the same
warm-up (both depend only on the seed), runs in ``<out>/<strategy>/`` (resumable there), and
the comparison goes to ``<out>/al_comparison.png`` and ``.csv``.

``python -m active_learning.compare RUN [RUN ...] --out DIR`` draws the comparison of runs
already saved (their folders or ``al_results.json`` files); with several seeds of a strategy,
the comparison over seeds (:mod:`active_learning.seed_comparison`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from active_learning.acquisition import ALL, PLAIN
from active_learning.config import ALConfig
from active_learning.learner import Learner
from active_learning.loop import IterationHook, Log, LoopResult, run_active_learning
from active_learning.results import BASELINE, RESULTS_JSON, write_comparison
from active_learning.seed_comparison import collect, write_seed_comparison

FinishHook = Callable[[LoopResult, Learner], None]


def comparison_strategies(strategies: Sequence[str]) -> list[str]:
    """``strategies`` with the uniform baseline first (added when missing), no repeats."""
    ordered = [BASELINE] + [s for s in strategies if s != BASELINE]
    return list(dict.fromkeys(ordered))


def run_strategies(
    learner: Learner,
    labels: np.ndarray,
    config: ALConfig,
    out_dir: Path,
    strategies: Sequence[str] = PLAIN,
    *,
    on_iteration: IterationHook | None = None,
    on_finish: FinishHook | None = None,
    resume: bool = True,
    log: Log | None = print,
    writes: bool = True,
) -> dict[str, LoopResult]:
    """Run every strategy (plus uniform) with ``config``'s seed, one after the other.

    ``on_finish(result, learner)`` runs after each strategy while the learner holds that
    strategy's final state (e.g. to test it on every source).
    """
    out_dir = Path(out_dir)
    results: dict[str, LoopResult] = {}
    for strategy in comparison_strategies(strategies):
        strategy_config = dataclasses.replace(config, acq_func=strategy)
        result = run_active_learning(
            learner,
            labels,
            strategy_config,
            out_dir / strategy,
            on_iteration=on_iteration,
            resume=resume,
            log=log,
            writes=writes,
        )
        if on_finish is not None:
            on_finish(result, learner)
        results[strategy] = result
    paths = [r.results_json for r in results.values() if r.results_json is not None]
    if paths:
        plot = write_comparison(paths, out_dir)
        if log:
            log(f"comparison of {', '.join(results)}: {plot}")
    return results


def run(
    learner: Learner,
    labels: np.ndarray,
    config: ALConfig,
    out_dir: Path,
    *,
    on_iteration: IterationHook | None = None,
    on_finish: FinishHook | None = None,
    resume: bool = True,
    log: Log | None = print,
    writes: bool = True,
) -> dict[str, LoopResult]:
    """``config.acq_func`` ``all`` -> :func:`run_strategies` over the five plain strategies;
    otherwise one loop in ``out_dir``."""
    if config.acq_func == ALL:
        return run_strategies(
            learner,
            labels,
            config,
            out_dir,
            PLAIN,
            on_iteration=on_iteration,
            on_finish=on_finish,
            resume=resume,
            log=log,
            writes=writes,
        )
    result = run_active_learning(
        learner, labels, config, out_dir, on_iteration=on_iteration, resume=resume, log=log,
        writes=writes,
    )  # fmt: skip
    if on_finish is not None:
        on_finish(result, learner)
    return {result.strategy: result}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m active_learning.compare",
        description="Draw saved active-learning runs on one plot (validation AP against "
        "labelled images; uniform dashed) and write a summary CSV. Runs of several seeds are "
        "compared over the seeds instead (active_learning.seed_comparison: bands, area under "
        "the curve, labels to reach --target, seeds won against uniform and a paired test).",
    )
    parser.add_argument("runs", nargs="+", type=Path, help=f"run folders or {RESULTS_JSON} files")
    parser.add_argument("--out", type=Path, required=True, help="folder for the plot and CSV")
    parser.add_argument("--target", type=float, help="over seeds: the validation AP to reach")
    args = parser.parse_args(argv)
    paths = [p / RESULTS_JSON if p.is_dir() else p for p in args.runs]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"error: no results file: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        curves = collect(paths)
    except (ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if any(len(by_seed) > 1 for by_seed in curves.values()):  # several seeds: bands, tests
        print(write_seed_comparison(curves, args.out, args.target))
        return 0
    print(write_comparison(paths, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
