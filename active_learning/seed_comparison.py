"""Write a comparison of strategies over seeds (:mod:`active_learning.seed_stats`): a CSV and a
JSON summary, and a plot of each strategy's mean learning curve with a band (one standard
deviation over the seeds), label-free variants dashed beside their true-label counterparts.

``python -m active_learning.compare RUN [RUN ...] --out DIR`` given runs of several seeds
(folders or ``al_results.json`` files) groups them by strategy (and label-free or not) with
one curve per seed (:func:`collect`) and writes ``seed_comparison.{csv,json,png}`` in DIR.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from active_learning.seed_stats import (
    BASELINE,
    Curve,
    curve_from_history,
    on_common_counts,
    summarize,
)
from rfd_common.figures import save_figure
from rfd_common.files import atomic_write_json, atomic_write_text
from rfd_common.tables import csv_text

STEM = "seed_comparison"
LABEL_FREE = " (label-free)"
COLUMNS = [
    "strategy", "seeds", "aulc_mean", "aulc_std", "reached", "labels_to_reach_mean",
    "wins_vs_uniform", "paired_seeds", "p_value_vs_uniform",
]  # fmt: skip


def collect(paths: Sequence[Path], metric: str = "val_ap") -> dict[str, dict[int, Curve]]:
    """Saved runs as ``{strategy: {seed: curve}}``; a label-free run's strategy gets
    :data:`LABEL_FREE` appended. Two runs of one strategy and seed are an error."""
    curves: dict[str, dict[int, Curve]] = {}
    for path in paths:
        run = json.loads(Path(path).read_text())
        config = run.get("config", {})
        name = run["strategy"] + (LABEL_FREE if config.get("label_free") else "")
        seed = int(config.get("seed", 0))
        if seed in curves.setdefault(name, {}):
            raise ValueError(f"{path}: a second run of {name} with seed {seed}")
        curves[name][seed] = curve_from_history(run["history"], metric)
    return curves


def write_seed_comparison(
    curves: Mapping[str, Mapping[int, Curve]],
    out_dir: Path,
    target: float | None = None,
    metric: str = "validation AP",
) -> Path:
    """CSV, JSON and PNG of the comparison in ``out_dir``; returns the plot's path."""
    out_dir = Path(out_dir)
    summaries = summarize(curves, target)
    rows = [[getattr(s, c) if c != "seeds" else len(s.seeds) for c in COLUMNS] for s in summaries]
    atomic_write_text(out_dir / f"{STEM}.csv", csv_text(COLUMNS, rows, ".6g"))
    bands = {}
    for strategy, by_seed in curves.items():
        counts, values = on_common_counts([by_seed[s] for s in sorted(by_seed)])
        bands[strategy] = {
            "labelled": counts.tolist(),
            "mean": values.mean(axis=0).tolist(),
            "std": values.std(axis=0, ddof=1).tolist() if len(values) > 1 else [0.0] * len(counts),
        }
    atomic_write_json(
        out_dir / f"{STEM}.json",
        {"metric": metric, "target": target, "strategies": [s.to_dict() for s in summaries],
         "curves": bands},
    )  # fmt: skip
    return plot_bands(bands, out_dir / f"{STEM}.png", metric, target)


def plot_bands(
    bands: Mapping[str, Mapping[str, list[float]]],
    png_path: Path,
    metric: str,
    target: float | None,
) -> Path:
    """Mean curves with +-1 std bands; uniform black, label-free dashed in its base's colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    colours: dict[str, str] = {BASELINE: "black"}
    palette = iter(plt.rcParams["axes.prop_cycle"].by_key()["color"] * 4)
    for name, band in bands.items():
        base = name.removesuffix(LABEL_FREE)
        colour = colours.setdefault(base, next(palette))
        x, mean, std = (np.asarray(band[k]) for k in ("labelled", "mean", "std"))
        style = "--" if name.endswith(LABEL_FREE) or name == BASELINE else "-"
        ax.plot(x, mean, style, color=colour, label=name)
        ax.fill_between(x, mean - std, mean + std, color=colour, alpha=0.15, linewidth=0)
    if target is not None:
        ax.axhline(target, color="grey", linewidth=0.8, linestyle=":", label="target")
    ax.set_xlabel("labelled images")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("strategies over seeds: mean and one standard deviation")
    fig.tight_layout()
    return save_figure(fig, png_path, tight=False)
