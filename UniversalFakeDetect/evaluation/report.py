"""Write evaluation results as data: metrics.json, metrics.csv, predictions.csv, ap.txt, acc.txt."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from datagen.manifest import ManifestRow
from rfd_common.files import atomic_write_json, atomic_write_text, ensure_writable_dir
from rfd_common.tables import csv_text
from UniversalFakeDetect.evaluation.metrics import EvaluationResult

CSV_COLUMNS = (
    "source", "family", "label", "images", "accuracy", "ap", "roc_auc", "best_threshold_accuracy",
    "seen_in_training",
)  # fmt: skip


def _classic_lines(result: EvaluationResult, key: str) -> str:
    """The UniversalFakeDetect-style text table: ``source: value`` in percent."""
    lines = []
    for m in result.sources:
        value = getattr(m, key)
        lines.append(f"{m.source}: {'n/a' if value is None else f'{100 * value:.2f}'}")
    mean = result.summary.get("mean_ap" if key == "ap" else "mean_source_accuracy")
    lines.append(f"mean: {'n/a' if mean is None else f'{100 * mean:.2f}'}")
    return "\n".join(lines) + "\n"


def write_report(
    result: EvaluationResult,
    folder: Path,
    rows: Sequence[ManifestRow],
    probs: Sequence[float],
    info: dict[str, Any],
) -> Path:
    """Write all result files into ``folder`` (created if needed); returns the folder."""
    folder = ensure_writable_dir(Path(folder), flag="--result_folder")
    atomic_write_json(
        folder / "metrics.json",
        {"info": info, "summary": result.summary, "sources": [asdict(m) for m in result.sources]},
    )
    table = [[getattr(m, c) for c in CSV_COLUMNS] for m in result.sources]
    summary = result.summary
    table.append(
        ["mean", "", "", summary["images"], summary["mean_source_accuracy"], summary["mean_ap"],
         summary["mean_roc_auc"], summary.get("best_threshold_accuracy"), None]
    )  # fmt: skip
    atomic_write_text(folder / "metrics.csv", csv_text(CSV_COLUMNS, table))
    predictions = [[r.path, r.source, r.label, float(p)] for r, p in zip(rows, probs, strict=True)]
    atomic_write_text(
        folder / "predictions.csv",
        csv_text(("path", "source", "label", "prob_fake"), predictions),
    )
    atomic_write_text(folder / "ap.txt", _classic_lines(result, "ap"))
    atomic_write_text(folder / "acc.txt", _classic_lines(result, "accuracy"))
    return folder


def format_table(result: EvaluationResult) -> str:
    """A human-readable table of the per-source results."""
    lines = [f"{'source':34s} {'label':5s} {'n':>5s} {'acc':>7s} {'AP':>7s} {'AUC':>7s}"]
    for m in result.sources:
        ap = "" if m.ap is None else f"{100 * m.ap:7.2f}"
        auc = "" if m.roc_auc is None else f"{100 * m.roc_auc:7.2f}"
        label = "fake" if m.label else "real"
        lines.append(
            f"{m.source:34s} {label:5s} {m.images:5d} {100 * m.accuracy:7.2f} {ap:>7s} {auc:>7s}"
        )
    s = result.summary
    mean_ap = "n/a" if s["mean_ap"] is None else f"{100 * s['mean_ap']:.2f}"
    line = f"accuracy {100 * s['accuracy']:.2f}  mean AP over generators {mean_ap}"
    for key, label in (("mean_ap_seen", "seen in training"), ("mean_ap_unseen", "unseen")):
        if s.get(key) is not None:
            line += f"  {label} {100 * s[key]:.2f}"
    lines.append(line + f"  ECE {s['ece']:.3f}")
    return "\n".join(lines)
