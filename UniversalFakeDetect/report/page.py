"""The report's content, section by section, from a run's saved data (:mod:`.run_data`).

Every builder returns plain data for the template: numbers stay numbers (the template formats
them), pictures are data URIs, and a section whose input is missing comes back empty with a
note saying what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from active_learning.results import CURVE_PNG, HISTORY_CSV, QUERIES_CSV, RESULTS_JSON
from UniversalFakeDetect.report.images import png_uri, thumbnail
from UniversalFakeDetect.report.run_data import (
    KIND_LABELS,
    METRICS_JSON,
    PREDICTIONS_CSV,
    Prediction,
    QueriedImage,
    RunData,
    confident_mistakes,
    query_samples,
    query_steps,
)

ROC_PNG = "roc.png"
ACCURACY_PNG = "accuracy_by_source.png"

SETTINGS = (
    ("name", "name"), ("arch", "architecture"), ("weights", "weights"),
    ("fix_backbone", "frozen backbone"), ("preset", "preset"), ("data_root", "dataset"),
    ("split", "split"), ("perturbation", "perturbation"), ("checkpoint", "checkpoint"),
    ("train_images", "training images"), ("holdout_images", "held-out images"),
    ("best_epoch", "best epoch"), ("train_seconds", "training seconds"),
    ("cache_views", "cached augmented views"), ("strategy", "strategy"),
    ("labelled_images", "labelled images"), ("pool_images", "pool images"),
)  # fmt: skip
AL_SETTINGS = (
    ("acq_func", "acquisition"), ("num_samples_per_class", "initial images per class"),
    ("query", "query size"), ("al_iter", "iterations"), ("al_niter_warmup", "warm-up epochs"),
    ("niter", "epochs per query"), ("dropout_iter", "MC-dropout passes"),
    ("subsample_size", "pool subsample"), ("balance_acquisition", "class-balanced queries"),
    ("use_weighted_loss", "weighted loss"), ("weighted_loss_decay", "loss-weight decay"),
    ("label_free", "label-free"), ("seed", "seed"),
)  # fmt: skip
HEADLINE = (
    ("accuracy", "accuracy", "pct"), ("real_accuracy", "real accuracy", "pct"),
    ("fake_accuracy", "fake accuracy", "pct"), ("mean_ap", "mean AP over generators", "pct"),
    ("mean_ap_seen", "mean AP, generators seen in training", "pct"),
    ("mean_ap_unseen", "mean AP, unseen generators", "pct"),
    ("mean_roc_auc", "mean ROC-AUC over generators", "pct"), ("ece", "ECE", "num"),
    ("threshold", "threshold", "num"), ("tuned_threshold", "tuned threshold", "num"),
    ("best_threshold_accuracy", "accuracy at the tuned threshold", "pct"),
    ("images", "test images", "int"), ("unreadable_images", "unreadable test images", "int"),
)  # fmt: skip


@dataclass
class Figure:
    """A saved plot, embedded (``uri``), or a note saying why it is not."""

    title: str
    uri: str | None
    note: str = ""


@dataclass
class Thumb:
    """One gallery image: its thumbnail (None: not readable), caption and full path; with
    ``--heatmaps``, its Grad-CAM overlay at the same size and the class that explains."""

    path: str
    caption: str
    label: int
    uri: str | None = None
    width: int = 0
    height: int = 0
    overlay: str | None = None
    explained: str = ""


@dataclass
class Gallery:
    """A titled row of thumbnails with a line of context."""

    title: str
    subtitle: str
    thumbs: list[Thumb] = field(default_factory=list)
    label: int | None = None  # the class of every image shown, when they share one


def summary(data: RunData) -> dict[str, Any]:
    """Title, run kind, the key settings and the headline numbers."""
    info = data.info
    settings = [(label, info[key]) for key, label in SETTINGS if info.get(key) is not None]
    al_config = (data.al_results or {}).get("config") or info.get("active_learning") or {}
    settings += [(label, al_config[k]) for k, label in AL_SETTINGS if al_config.get(k) is not None]
    numbers = (data.metrics or {}).get("summary", {})
    headline = [(label, numbers[k], style) for k, label, style in HEADLINE if k in numbers]
    name = info.get("name") or data.folder.name
    return {
        "title": f"{name}: {KIND_LABELS[data.kind]} run",
        "kind": KIND_LABELS[data.kind],
        "settings": settings,
        "headline": [item for item in headline if item[1] is not None],
    }


SOURCE_COLUMNS = (
    "source", "family", "label", "images", "accuracy", "ap", "roc_auc", "best_threshold_accuracy",
    "seen_in_training",
)  # fmt: skip
MEAN_COLUMNS = (
    "images", "mean_source_accuracy", "mean_ap", "mean_roc_auc", "best_threshold_accuracy",
    "threshold",
)  # fmt: skip


def source_rows(metrics: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The per-source table: ``metrics.json``'s source records in its order (absent: None)."""
    records = (metrics or {}).get("sources", [])
    return [{c: record.get(c) for c in SOURCE_COLUMNS} for record in records]


def mean_row(metrics: dict[str, Any] | None) -> dict[str, Any]:
    """The table's last row: ``metrics.json``'s summary numbers (absent: None)."""
    numbers = (metrics or {}).get("summary", {})
    return {c: numbers.get(c) for c in MEAN_COLUMNS}


def figure(folder: Path, name: str, title: str) -> Figure:
    """The run's saved plot ``name``, or a note that it is missing."""
    uri = png_uri(folder / name)
    return Figure(title, uri, "" if uri else f"{name} is missing or is not a PNG image")


def result_figures(data: RunData) -> list[Figure]:
    """ROC curves and per-source accuracy bars, when the run was tested."""
    if data.metrics is None:
        return []
    return [
        figure(data.folder, ROC_PNG, "ROC per generator"),
        figure(data.folder, ACCURACY_PNG, "Accuracy per source"),
    ]


def active_learning(data: RunData) -> dict[str, Any] | None:
    """The learning curve and the per-iteration class balance of the queried images."""
    run = data.al_results
    if run is None:
        return None
    return {
        "strategy": run.get("strategy"),
        "note": run.get("note", ""),
        "stopped_early": bool(run.get("stopped_early")),
        "curve": figure(data.folder, CURVE_PNG, "Learning curve"),
        "steps": query_steps(run.get("history", [])),
        "phase_seconds": run.get("phase_seconds") or {},
    }


def _thumb(root: Path | None, path: str, caption: str, label: int) -> Thumb:
    found = thumbnail(root / path) if root is not None else None
    uri, width, height = found if found else (None, 0, 0)
    return Thumb(path, caption, label, uri, width, height)


def run_threshold(data: RunData) -> float:
    """The threshold of the run's accuracies (``metrics.json``; 0.5 when not recorded)."""
    recorded = (data.metrics or {}).get("summary", {}).get("threshold")
    return 0.5 if recorded is None else float(recorded)


def mistake_galleries(data: RunData, root: Path | None, per_source: int) -> list[Gallery]:
    """Per source, its most confident mistakes (``predictions.csv`` at the run's threshold)."""
    threshold = run_threshold(data)
    galleries = []
    for found in confident_mistakes(data.predictions or [], threshold, per_source):
        subtitle = f"{found.total} of {found.images} wrong at threshold {threshold:g}"
        gallery = Gallery(found.source, subtitle, label=found.label)
        gallery.thumbs = [_mistake_thumb(root, p) for p in found.shown]
        galleries.append(gallery)
    return galleries


def _mistake_thumb(root: Path | None, prediction: Prediction) -> Thumb:
    caption = f"P(fake) {prediction.prob_fake:.3f}"
    return _thumb(root, prediction.path, caption, prediction.label)


def query_galleries(data: RunData, root: Path | None, per_iteration: int) -> list[Gallery]:
    """Per iteration, a sample of the images it added (``al_queries.csv``)."""
    galleries = []
    for iteration, images in query_samples(data.queries or [], per_iteration).items():
        title = "initial set" if iteration == 0 else f"iteration {iteration}"
        total = sum(1 for q in data.queries or [] if q.iteration == iteration)
        gallery = Gallery(title, f"{len(images)} of the {total} images it added")
        gallery.thumbs = [_query_thumb(root, q) for q in images]
        galleries.append(gallery)
    return galleries


def _query_thumb(root: Path | None, image: QueriedImage) -> Thumb:
    caption = f"{'fake' if image.label else 'real'}: {image.source}"
    return _thumb(root, image.path, caption, image.label)


@dataclass(frozen=True)
class GalleryNote:
    """Whether to show a set of galleries (False: no image at all could be read) and a note
    saying which images are missing ('' when none)."""

    show: bool
    text: str = ""


def gallery_note(galleries: list[Gallery], root: Path | None) -> GalleryNote:
    """Whether the galleries can show anything, and why thumbnails are missing."""
    thumbs = [t for g in galleries for t in g.thumbs]
    missing = sum(t.uri is None for t in thumbs)
    if not missing:
        return GalleryNote(True)
    if root is None:
        return GalleryNote(False, "the dataset root is not recorded: no images to show")
    text = f"{missing} of {len(thumbs)} images could not be read under {root}"
    return GalleryNote(missing < len(thumbs), text)


def robustness_rows(data: RunData) -> list[dict[str, Any]]:
    """``robustness.csv``'s rows (clean first): the overall numbers per perturbation."""
    keys = ("perturbation", "accuracy", "real_accuracy", "fake_accuracy", "mean_ap")
    return [{k: row.get(k) for k in keys} for row in data.robustness or []]


def epoch_history(info: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Normal training's per-epoch records (``metrics.json`` info ``history``): the columns
    holding numbers, and one row per epoch."""
    history = [r for r in info.get("history") or [] if isinstance(r, dict)]
    columns: list[str] = []
    for record in history:
        columns += [k for k, v in record.items() if isinstance(v, int | float) and k not in columns]
    return columns, [[record.get(c) for c in columns] for record in history]


def files_used(data: RunData) -> list[tuple[str, str]]:
    """The run's files the page is built from, each with 'read' or the reason it was not."""
    names = [METRICS_JSON, PREDICTIONS_CSV, ROC_PNG, ACCURACY_PNG]
    if data.kind == "active_learning":
        names += [RESULTS_JSON, HISTORY_CSV, CURVE_PNG, QUERIES_CSV]
    found = []
    for name in names:
        reason = data.notes.get(name)
        if reason is None:
            reason = "read" if (data.folder / name).is_file() else "not written by this run"
        found.append((name, reason))
    return found
