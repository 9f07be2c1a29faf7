"""What a run folder saved, read back as data for its report (no HTML here).

A run folder is one that holds ``metrics.json`` (training and test runs, and active learning
once the final detector was tested) or ``al_results.json`` (active learning). Everything else
is optional: a file that is missing or cannot be read becomes a note, never an error.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from active_learning.results import QUERIES_CSV, RESULTS_JSON
from rfd_common.errors import UserError

METRICS_JSON = "metrics.json"
PREDICTIONS_CSV = "predictions.csv"
ROBUSTNESS_CSV = "robustness.csv"
COMPARISON_CSV = "al_comparison.csv"
Row = TypeVar("Row")
KIND_LABELS = {"training": "training", "test": "test", "active_learning": "active learning"}


@dataclass(frozen=True)
class Prediction:
    """One row of ``predictions.csv`` (``path`` relative to the dataset root)."""

    path: str
    source: str
    label: int
    prob_fake: float


@dataclass(frozen=True)
class SourceMistakes:
    """The most confident mistakes of one source at the run's threshold: for a real source
    its false positives (highest P(fake) first), for a fake source its false negatives (lowest
    P(fake) first); ``total`` mistakes among ``images``."""

    source: str
    label: int
    shown: list[Prediction]
    total: int
    images: int


@dataclass(frozen=True)
class QueryStep:
    """The images an active-learning iteration added (iteration 0: the initial set)."""

    iteration: int
    added: int
    real: int
    fake: int
    labelled: int
    val_ap: float | None
    val_acc: float | None


@dataclass(frozen=True)
class QueriedImage:
    """One row of ``al_queries.csv``."""

    iteration: int
    path: str
    source: str
    label: int


@dataclass
class RunData:
    """A run folder's saved results; ``None`` where a file is absent, with ``notes`` saying why
    (file name -> reason)."""

    folder: Path
    kind: str
    metrics: dict[str, Any] | None = None
    predictions: list[Prediction] | None = None
    al_results: dict[str, Any] | None = None
    queries: list[QueriedImage] | None = None
    robustness: list[dict[str, float | str | None]] | None = None
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def info(self) -> dict[str, Any]:
        return (self.metrics or {}).get("info", {})


def run_kind(info: dict[str, Any], has_al_results: bool) -> str:
    """``training``, ``test`` or ``active_learning``: as recorded (``run_kind``), else inferred
    from what the run saved (runs written before the field existed)."""
    if info.get("run_kind") in KIND_LABELS:
        return str(info["run_kind"])
    if has_al_results or "strategy" in info:
        return "active_learning"
    if "history" in info or "best_epoch" in info:
        return "training"
    return "test"


def check_run_folder(folder: Path) -> Path:
    """``folder`` if it is a run folder, else :class:`UserError` naming it (and, for a
    comparison of strategies, the run folders inside it)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder (expected a run's results folder)")
    if (folder / METRICS_JSON).is_file() or (folder / RESULTS_JSON).is_file():
        return folder
    inside = sorted(p.parent.name for p in folder.glob(f"*/{RESULTS_JSON}"))
    if inside and (folder / COMPARISON_CSV).is_file():
        raise UserError(
            f"{folder}: a comparison of active-learning strategies; each run has its own "
            f"report, give one of its run folders: {', '.join(inside)}"
        )
    raise UserError(
        f"{folder}: not a run folder (neither {METRICS_JSON} nor {RESULTS_JSON} is there)"
    )


def _read_json(path: Path, notes: dict[str, str], required: bool = False) -> Any:
    """The JSON document at ``path``, or None with a note (``required``: a UserError)."""
    if not path.is_file():
        notes[path.name] = "not written by this run"
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(document, dict):
            raise ValueError(f"a JSON {type(document).__name__}, not an object")
        return document
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError included
        if required:
            raise UserError(f"{path}: cannot be read as JSON ({exc})") from exc
        notes[path.name] = f"could not be read ({exc})"
        return None


def _read_rows(
    path: Path, notes: dict[str, str], make: Callable[[dict[str, str]], Row]
) -> list[Row] | None:
    """``make(row)`` for every row of the CSV file at ``path``, or None with a note."""
    if not path.is_file():
        notes[path.name] = "not written by this run"
        return None
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            return [make(row) for row in csv.DictReader(handle)]
    except (OSError, UnicodeDecodeError, csv.Error, KeyError, TypeError, ValueError) as exc:
        notes[path.name] = f"could not be read ({type(exc).__name__}: {exc})"
        return None


def _prediction(row: dict[str, str]) -> Prediction:
    return Prediction(row["path"], row["source"], int(row["label"]), float(row["prob_fake"]))


def _queried(row: dict[str, str]) -> QueriedImage:
    return QueriedImage(int(row["iteration"]), row["path"], row["source"], int(row["label"]))


def _robustness(row: dict[str, str]) -> dict[str, float | str | None]:
    """A row of ``robustness.csv``: the perturbation's name, its numbers (empty: None)."""
    return {k: v if k == "perturbation" else float(v) if v else None for k, v in row.items()}


def load_run(folder: Path) -> RunData:
    """Everything the report shows, read from ``folder`` (checked to be a run folder)."""
    folder = check_run_folder(folder)
    notes: dict[str, str] = {}
    has_metrics = (folder / METRICS_JSON).is_file()
    metrics = _read_json(folder / METRICS_JSON, notes, required=has_metrics)
    al_path = folder / RESULTS_JSON
    al_results = _read_json(al_path, notes, required=not has_metrics) if al_path.is_file() else None
    kind = run_kind((metrics or {}).get("info", {}), al_results is not None)
    data = RunData(folder, kind, metrics=metrics, al_results=al_results, notes=notes)
    if metrics is not None:
        data.predictions = _read_rows(folder / PREDICTIONS_CSV, notes, _prediction)
    if kind == "active_learning":
        data.queries = _read_rows(folder / QUERIES_CSV, notes, _queried)
    if (folder / ROBUSTNESS_CSV).is_file():
        data.robustness = _read_rows(folder / ROBUSTNESS_CSV, notes, _robustness)
    return data


def confident_mistakes(
    predictions: Sequence[Prediction], threshold: float, per_source: int = 8
) -> list[SourceMistakes]:
    """Per source (sorted by name), its ``per_source`` most confident mistakes at ``threshold``
    (fake when ``prob_fake >= threshold``, as the accuracies count): the reals scored most fake,
    the fakes scored most real; ties go by path."""
    by_source: dict[str, list[Prediction]] = defaultdict(list)
    for prediction in predictions:
        by_source[prediction.source].append(prediction)
    found = []
    for source in sorted(by_source):
        rows = by_source[source]
        wrong = [p for p in rows if (p.prob_fake >= threshold) != (p.label == 1)]
        wrong.sort(key=lambda p: (-p.prob_fake if p.label == 0 else p.prob_fake, p.path))
        found.append(
            SourceMistakes(source, rows[0].label, wrong[:per_source], len(wrong), len(rows))
        )
    return found


def query_steps(history: Sequence[dict[str, Any]]) -> list[QueryStep]:
    """What each iteration added, from the cumulative per-class counts of the history."""
    steps, real, fake = [], 0, 0
    for record in history:
        now_real, now_fake = int(record["labelled_real"]), int(record["labelled_fake"])
        steps.append(
            QueryStep(
                iteration=int(record["iteration"]), added=now_real + now_fake - real - fake,
                real=now_real - real, fake=now_fake - fake, labelled=now_real + now_fake,
                val_ap=record.get("val_ap"), val_acc=record.get("val_acc"),
            )
        )  # fmt: skip
        real, fake = now_real, now_fake
    return steps


def query_samples(
    queries: Sequence[QueriedImage], per_iteration: int = 8
) -> dict[int, list[QueriedImage]]:
    """Up to ``per_iteration`` images of each iteration's query, spread evenly over the order
    they were labelled in (the first always among them); by iteration."""
    by_iteration: dict[int, list[QueriedImage]] = defaultdict(list)
    for image in queries:
        by_iteration[image.iteration].append(image)
    samples = {}
    for iteration in sorted(by_iteration):
        images = by_iteration[iteration]
        count = min(per_iteration, len(images))
        samples[iteration] = [images[k * len(images) // count] for k in range(count)]
    return samples
