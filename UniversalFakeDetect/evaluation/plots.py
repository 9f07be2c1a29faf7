"""Plots drawn from saved results (never from live state): per-source accuracy, ROC curves."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import roc_curve

from rfd_common.figures import save_figure


def plot_source_accuracy(folder: Path) -> Path:
    """``accuracy_by_source.png``: bars of accuracy per source, reals and fakes coloured."""
    metrics = json.loads((Path(folder) / "metrics.json").read_text())
    sources = metrics["sources"]
    names = [s["source"] for s in sources]
    accuracy = [100 * s["accuracy"] for s in sources]
    colours = ["tab:green" if s["label"] == 0 else "tab:red" for s in sources]
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(names) + 2), 4))
    ax.bar(range(len(names)), accuracy, color=colours)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 108)
    ax.set_title("Accuracy per source (green: real, red: fake)")
    for i, value in enumerate(accuracy):
        ax.text(i, value + 1, f"{value:.0f}", ha="center", fontsize=8)
    return save_figure(fig, Path(folder) / "accuracy_by_source.png")


def plot_roc(folder: Path) -> Path:
    """``roc.png``: one ROC curve per generator (its fakes against all reals)."""
    with open(Path(folder) / "predictions.csv", newline="") as handle:
        records = list(csv.DictReader(handle))
    labels = np.array([int(r["label"]) for r in records])
    probs = np.array([float(r["prob_fake"]) for r in records])
    sources = np.array([r["source"] for r in records])
    fig, ax = plt.subplots(figsize=(5, 5))
    reals = labels == 0
    for source in sorted(set(sources[labels == 1].tolist())):
        mask = reals | (sources == source)
        if reals.any():
            fpr, tpr, _ = roc_curve(labels[mask], probs[mask])
            ax.plot(fpr, tpr, label=source)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set_xlabel("false positive rate (reals called fake)")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC per generator")
    ax.legend(fontsize=7, loc="lower right")
    return save_figure(fig, Path(folder) / "roc.png")


def plot_all(folder: Path) -> list[Path]:
    """Every plot of a results folder."""
    return [plot_source_accuracy(folder), plot_roc(folder)]
