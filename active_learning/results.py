"""Results of a run: per-iteration JSON and CSV, and plots drawn from the saved JSON.

``<out>/al_results.json``: the run (strategy, config, whether true labels were read, the
unreadable pool images left out), one record per iteration (labelled count, per-class counts,
validation acc and AP, query and training seconds, learning rate, unreadable pool images found
so far, ...), the final record and whether early stopping ended the run before ``al_iter``.
``<out>/al_history.csv``: the records as rows.
``<out>/learning_curve.png``: validation AP (and accuracy) against labelled images.
``<out>/al_queries.csv`` (:func:`write_queries`, written by the caller once the loop is done):
every labelled pool image in the order it was labelled, with the iteration that added it (0:
the initial set), its pool index and the caller's description of it (path, source, label).
A comparison of several runs (:func:`plot_comparison`) draws them on one plot with the uniform
baseline dashed. Label 0 is real, 1 is fake.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from active_learning.config import ALConfig
from rfd_common.figures import save_figure
from rfd_common.files import atomic_write_json, atomic_write_text
from rfd_common.tables import csv_text

RESULTS_JSON = "al_results.json"
HISTORY_CSV = "al_history.csv"
CURVE_PNG = "learning_curve.png"
COMPARISON_PNG = "al_comparison.png"
COMPARISON_CSV = "al_comparison.csv"
QUERIES_CSV = "al_queries.csv"
QUERIES_COLUMNS = ("iteration", "order", "pool_index", "path", "source", "label")
BASELINE = "uniform"


@dataclass
class IterationRecord:
    """One iteration: 0 is the initial set after warm-up, then one per query."""

    iteration: int
    labelled: int
    labelled_real: int
    labelled_fake: int
    queried: int
    val_acc: float
    val_ap: float
    query_seconds: float  # MC-dropout passes, scoring and selection
    train_seconds: float  # the round's training epochs (validation not included)
    epochs: int
    lr_drops: int
    train_loss: float | None
    unreadable: int = 0  # unreadable pool items left out so far
    lr: float | None = None  # the learning rate after the iteration (after any drop)
    stopped_early: bool = False  # the rate fell below the floor: the last iteration
    validation: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    validate_seconds: float = 0.0  # the round's validation

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


CSV_COLUMNS = [
    "iteration",
    "labelled",
    "labelled_real",
    "labelled_fake",
    "queried",
    "val_acc",
    "val_ap",
    "query_seconds",
    "train_seconds",
    "validate_seconds",
    "epochs",
    "lr_drops",
    "lr",
    "train_loss",
    "unreadable",
]


def run_summary(
    strategy: str,
    config: ALConfig,
    history: Sequence[dict[str, Any]],
    unreadable: Sequence[int] = (),
    phase_seconds: Mapping[str, float] | None = None,
) -> dict:
    """The JSON document of one run; ``unreadable``: pool indices left out as unreadable;
    ``phase_seconds``: wall time per phase so far in this process (:class:`PhaseTimes`)."""
    uses = config.true_label_uses
    return {
        "strategy": strategy,
        "config": {**config.to_dict(), "acq_func": strategy},
        "unreadable_pool_images": len(unreadable),
        "unreadable_pool_indices": sorted(int(i) for i in unreadable),
        "label_free": config.label_free,
        "simulation_only": bool(uses),
        "true_label_uses": uses,
        "note": (
            "simulation: this run read the true labels of pool images ("
            + "; ".join(uses)
            + "), which an unlabelled pool does not have"
            if uses
            else "no pool label was read except those of queried images"
        ),
        "history": list(history),
        "final": history[-1] if history else None,
        "stopped_early": bool(history and history[-1].get("stopped_early")),
        "phase_seconds": {k: round(float(v), 3) for k, v in (phase_seconds or {}).items()},
    }


def history_csv(history: Sequence[dict[str, Any]]) -> str:
    """The records as CSV; scalar ``extra`` entries become extra columns."""
    extras = sorted(
        {
            key
            for record in history
            for key, value in record.get("extra", {}).items()
            if isinstance(value, int | float | str | bool) or value is None
        }
    )
    rows = [
        [record.get(c) for c in CSV_COLUMNS] + [record.get("extra", {}).get(k) for k in extras]
        for record in history
    ]
    return csv_text(CSV_COLUMNS + extras, rows, ".6g")


def write_results(
    out_dir: Path,
    strategy: str,
    config: ALConfig,
    history: Sequence[dict[str, Any]],
    unreadable: Sequence[int] = (),
    phase_seconds: Mapping[str, float] | None = None,
) -> Path:
    """Write the JSON, the CSV and the learning curve of one run; return the JSON's path.

    ``unreadable``: pool indices left out as unreadable (counted and listed in the JSON);
    ``phase_seconds``: wall time per phase (in the JSON)."""
    out_dir = Path(out_dir)
    json_path = out_dir / RESULTS_JSON
    summary = run_summary(strategy, config, history, unreadable, phase_seconds)
    atomic_write_json(json_path, summary)
    atomic_write_text(out_dir / HISTORY_CSV, history_csv(history))
    plot_learning_curve(json_path, out_dir / CURVE_PNG)
    return json_path


def labelled_iterations(history: Sequence[dict[str, Any]], labelled: int) -> list[int]:
    """The iteration that added each of the first ``labelled`` labelled pool items, in the order
    they were labelled: iteration ``i`` added the items from ``history[i - 1]['labelled']`` up to
    ``history[i]['labelled']`` (iteration 0, the initial set, those before
    ``history[0]['labelled']``). Raises ValueError when the counts do not add up."""
    counts = [int(record["labelled"]) for record in history]
    if not counts or counts[-1] != labelled or counts != sorted(counts):
        raise ValueError(f"{labelled} labelled items, but the history counts {counts}")
    iterations: list[int] = []
    for record, count in zip(history, counts, strict=True):
        iterations += [int(record["iteration"])] * (count - len(iterations))
    return iterations


def write_queries(
    out_dir: Path,
    history: Sequence[dict[str, Any]],
    labelled: Sequence[int],
    items: Sequence[tuple[str, str, int]],
) -> Path:
    """``al_queries.csv``: one row per labelled pool item in labelling order (``labelled``: pool
    indices), with the iteration that added it and ``items[index]`` (path, source, label)."""
    iterations = labelled_iterations(history, len(labelled))
    rows = [
        [iteration, order, int(index), *items[int(index)]]
        for order, (iteration, index) in enumerate(zip(iterations, labelled, strict=True))
    ]
    path = Path(out_dir) / QUERIES_CSV
    atomic_write_text(path, csv_text(QUERIES_COLUMNS, rows))
    return path


def load_results(path: Path) -> dict[str, Any]:
    """A run's JSON document (``path`` may be its folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_JSON
    return json.loads(path.read_text())


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _curve(run: dict[str, Any], key: str) -> tuple[list[int], list[float]]:
    history = run["history"]
    return [r["labelled"] for r in history], [r[key] for r in history]


def plot_learning_curve(json_path: Path, png_path: Path) -> None:
    """Validation AP and accuracy against labelled images, from a saved run."""
    run = load_results(json_path)
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, name in ((axes[0], "val_ap", "validation AP"), (axes[1], "val_acc", "accuracy")):
        x, y = _curve(run, key)
        ax.plot(x, y, marker="o", markersize=3)
        ax.set_xlabel("labelled images")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    title = f"active learning: {run['strategy']}"
    if run.get("simulation_only"):
        title += " (simulation: true pool labels read)"
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, png_path, tight=False)


def plot_comparison(json_paths: Sequence[Path], png_path: Path, title: str = "") -> None:
    """Validation AP against labelled images for several saved runs on one plot; the uniform
    baseline is drawn dashed in black."""
    runs = [load_results(p) for p in json_paths]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for run in sorted(runs, key=lambda r: r["strategy"] != BASELINE):
        x, y = _curve(run, "val_ap")
        if run["strategy"] == BASELINE:
            ax.plot(x, y, "k--", label=f"{BASELINE} (baseline)")
        else:
            label = run["strategy"] + (" [true labels]" if run.get("simulation_only") else "")
            ax.plot(x, y, marker="o", markersize=3, label=label)
    ax.set_xlabel("labelled images")
    ax.set_ylabel("validation AP")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title or "active learning: strategies compared (same seed)")
    fig.tight_layout()
    save_figure(fig, png_path, tight=False)


def comparison_csv(json_paths: Sequence[Path]) -> str:
    """One row per run: final labelled count, final and mean validation AP and accuracy."""
    header = ["strategy", "labelled", "final_val_ap", "mean_val_ap", "final_val_acc", "simulation"]
    rows = []
    for path in json_paths:
        run = load_results(path)
        history = run["history"]
        aps = [r["val_ap"] for r in history]
        rows.append(
            [run["strategy"], history[-1]["labelled"], aps[-1], sum(aps) / len(aps),
             history[-1]["val_acc"], run.get("simulation_only", False)]
        )  # fmt: skip
    return csv_text(header, rows, ".6g")


def write_comparison(json_paths: Sequence[Path], out_dir: Path) -> Path:
    """The comparison plot and CSV of several runs in ``out_dir``; returns the plot's path."""
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / COMPARISON_CSV, comparison_csv(json_paths))
    plot_comparison(json_paths, out_dir / COMPARISON_PNG)
    return out_dir / COMPARISON_PNG
