"""Strategies compared over seeds: learning-curve bands, the area under the curve, labels to
reach a target, and a paired comparison with uniform.

A curve is a metric (validation AP by default) against the number of labelled items, one per
seed. Curves of one strategy share their labelled counts when their runs share the query
size; a run that stopped early (its learning rate fell below the floor) keeps its last value
for the counts it did not reach, so every seed counts at every point.

* AULC: the trapezoid area under the curve divided by the span of labelled counts, i.e. the
  mean metric over the labelling budget (1.0 is perfect from the first label).
* Labels to reach: the first labelled count whose metric reaches ``target`` (a fraction of the
  full-data metric, when one is given); ``None`` when a seed never does.
* Paired comparison: for each seed, the strategy's AULC minus uniform's AULC on the same seed
  (the same initial set and warm-up): the seeds it won, and the two-sided Wilcoxon signed-rank
  p-value (scipy, exact for small samples without ties).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy.integrate import trapezoid
from scipy.stats import wilcoxon

BASELINE = "uniform"
Curve = tuple[np.ndarray, np.ndarray]  # labelled counts, metric values


def curve_from_history(history: Sequence[Mapping], metric: str = "val_ap") -> Curve:
    """The (labelled, metric) curve of one run's history records (``extra`` metrics too)."""
    x = np.array([float(r["labelled"]) for r in history])
    y = np.array([float(r[metric] if metric in r else r["extra"][metric]) for r in history])
    return x, y


def aulc(x: np.ndarray, y: np.ndarray) -> float:
    """Area under the learning curve over the span of ``x``, divided by that span."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.size < 2 or x[-1] == x[0]:
        return float(y[-1]) if y.size else float("nan")
    return float(trapezoid(y, x) / (x[-1] - x[0]))


def labels_to_reach(x: np.ndarray, y: np.ndarray, target: float) -> float | None:
    """The first labelled count whose metric reaches ``target`` (None: never)."""
    reached = np.flatnonzero(np.asarray(y) >= target)
    return float(np.asarray(x)[reached[0]]) if reached.size else None


def on_common_counts(curves: Sequence[Curve]) -> tuple[np.ndarray, np.ndarray]:
    """The seeds' curves on the union of their labelled counts: [counts], [seeds, counts];
    past a seed's last count its last value is kept (a run that stopped early)."""
    counts = np.unique(np.concatenate([c[0] for c in curves]))
    rows = []
    for x, y in curves:
        positions = np.searchsorted(x, counts, side="right") - 1
        rows.append(np.asarray(y)[np.clip(positions, 0, len(y) - 1)])
    return counts, np.vstack(rows)


@dataclass(frozen=True)
class StrategySummary:
    """One strategy over its seeds."""

    strategy: str
    seeds: list[int]
    aulc_mean: float
    aulc_std: float
    reached: int | None  # seeds that reached the target (None: no target given)
    labels_to_reach_mean: float | None  # over the seeds that reached it
    wins_vs_uniform: int | None  # seeds with a higher AULC than uniform's on the same seed
    paired_seeds: int | None
    p_value_vs_uniform: float | None  # two-sided Wilcoxon signed-rank on the AULC differences

    def to_dict(self) -> dict:
        return asdict(self)


def paired_test(ours: Sequence[float], baseline: Sequence[float]) -> tuple[int, float | None]:
    """Seeds won (ours > baseline) and the two-sided Wilcoxon signed-rank p-value of the
    differences (None when every difference is 0: nothing to test)."""
    differences = np.asarray(ours, dtype=np.float64) - np.asarray(baseline, dtype=np.float64)
    wins = int((differences > 0).sum())
    if not np.any(differences):
        return wins, None
    return wins, float(wilcoxon(differences, alternative="two-sided").pvalue)


def summarize(
    curves: Mapping[str, Mapping[int, Curve]], target: float | None = None
) -> list[StrategySummary]:
    """A :class:`StrategySummary` per strategy (``curves[strategy][seed]``)."""
    areas = {s: {seed: aulc(*c) for seed, c in by_seed.items()} for s, by_seed in curves.items()}
    summaries = []
    for strategy, by_seed in curves.items():
        seeds = sorted(by_seed)
        values = [areas[strategy][seed] for seed in seeds]
        needed = [labels_to_reach(*by_seed[s], target) for s in seeds] if target is not None else []
        reached = [n for n in needed if n is not None]
        wins = paired = p_value = None
        baseline = areas.get(BASELINE, {})
        common = [s for s in seeds if s in baseline]
        if strategy != BASELINE and common:
            ours = [areas[strategy][s] for s in common]
            wins, p_value = paired_test(ours, [baseline[s] for s in common])
            paired = len(common)
        summaries.append(
            StrategySummary(
                strategy, seeds, float(np.mean(values)), float(np.std(values, ddof=1))
                if len(values) > 1 else 0.0, len(reached) if target is not None else None,
                float(np.mean(reached)) if reached else None, wins, paired, p_value,
            )
        )  # fmt: skip
    return summaries
