"""Per-source metrics of a detector's probabilities.

Accuracy per source (real accuracy for real sources, fake accuracy for fake ones: the paper's
tables); per generator, AP and ROC-AUC of that generator's fakes against *all* real images of
the evaluated set (AP of a single-class subset is meaningless); means over generators;
calibration (expected calibration error).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from datagen.manifest import FAKE, REAL, ManifestRow


@dataclass
class SourceMetrics:
    """One row of the results table."""

    source: str
    family: str
    label: int
    images: int
    accuracy: float
    ap: float | None = None  # fake sources only: this generator's fakes vs all reals
    roc_auc: float | None = None
    best_threshold_accuracy: float | None = None
    seen_in_training: bool | None = None


@dataclass
class EvaluationResult:
    """Everything the reports write: per source rows and the summary numbers."""

    sources: list[SourceMetrics]
    summary: dict[str, float | int | None] = field(default_factory=dict)


def expected_calibration_error(labels: np.ndarray, probs: np.ndarray, bins: int = 15) -> float:
    """ECE with equal-width bins over the probability of fake: sum_b |B|/N * |acc_b - conf_b|.

    Confidence and accuracy are those of the predicted class.
    """
    labels = np.asarray(labels)
    probs = np.asarray(probs, dtype=np.float64)
    predicted = (probs >= 0.5).astype(int)
    confidence = np.where(predicted == 1, probs, 1.0 - probs)
    correct = (predicted == labels).astype(np.float64)
    edges = np.linspace(0.5, 1.0, bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(ece)


def best_threshold(labels: np.ndarray, probs: np.ndarray) -> float:
    """The threshold on P(fake) that maximises accuracy (midpoint between sorted scores)."""
    labels = np.asarray(labels)
    probs = np.asarray(probs, dtype=np.float64)
    order = np.argsort(probs)
    sorted_probs, sorted_labels = probs[order], labels[order]
    # threshold between position i-1 and i: predict fake for positions >= i
    fakes_above = np.concatenate([np.cumsum(sorted_labels[::-1])[::-1], [0]])
    reals_below = np.concatenate([[0], np.cumsum(1 - sorted_labels)])
    correct = fakes_above + reals_below
    best = int(np.argmax(correct))
    if best == 0:
        return float(sorted_probs[0] - 1e-6)
    if best == len(sorted_probs):
        return float(sorted_probs[-1] + 1e-6)
    return float((sorted_probs[best - 1] + sorted_probs[best]) / 2)


def _both_classes(labels: np.ndarray) -> bool:
    return bool(labels.size) and labels.min() != labels.max()


def evaluate_predictions(
    rows: Sequence[ManifestRow],
    probs: Sequence[float],
    threshold: float = 0.5,
    tuned_threshold: float | None = None,
    training_sources: set[str] | None = None,
    decisions: Sequence[int] | None = None,
) -> EvaluationResult:
    """Metrics per source and overall for probabilities of fake aligned with ``rows``.

    ``tuned_threshold`` (chosen on validation data) adds best-threshold accuracies;
    ``training_sources`` marks sources seen in training and adds means over seen and unseen
    generators. ``decisions`` (0 real, 1 fake per row) replaces ``probs >= threshold`` for the
    accuracies, e.g. the verdict words of a language model; AP, ROC-AUC and ECE stay on ``probs``.
    """
    probs_arr = np.asarray(probs, dtype=np.float64)
    labels = np.array([r.label for r in rows])
    sources = np.array([r.source for r in rows])
    if len(rows) != len(probs_arr):
        raise ValueError(f"{len(rows)} rows but {len(probs_arr)} probabilities")
    if decisions is None:
        decided = (probs_arr >= threshold).astype(int)
    else:
        decided = np.asarray(decisions, dtype=int)
        if decided.shape != labels.shape or not np.isin(decided, (REAL, FAKE)).all():
            raise ValueError(f"decisions must be {len(rows)} values of 0 or 1")
    real_mask = labels == REAL
    results = []
    for source in sorted(set(sources.tolist())):
        mask = sources == source
        label = int(labels[mask][0])
        family = next(r.family for r in rows if r.source == source) or (
            "real" if label == REAL else "unknown"
        )
        predictions = decided[mask]
        metrics = SourceMetrics(
            source=source,
            family=family,
            label=label,
            images=int(mask.sum()),
            accuracy=float((predictions == labels[mask]).mean()),
            seen_in_training=None if training_sources is None else source in training_sources,
        )
        if tuned_threshold is not None:
            tuned = (probs_arr[mask] >= tuned_threshold).astype(int)
            metrics.best_threshold_accuracy = float((tuned == labels[mask]).mean())
        if label == FAKE and real_mask.any():
            pooled = mask | real_mask
            metrics.ap = float(average_precision_score(labels[pooled], probs_arr[pooled]))
            metrics.roc_auc = float(roc_auc_score(labels[pooled], probs_arr[pooled]))
        results.append(metrics)

    generators = [m for m in results if m.label == FAKE and m.ap is not None]
    summary: dict[str, float | int | None] = {
        "images": len(rows),
        "accuracy": float((decided == labels).mean()),
        "real_accuracy": _mean([m.accuracy for m in results if m.label == REAL]),
        "fake_accuracy": _mean([m.accuracy for m in results if m.label == FAKE]),
        "mean_source_accuracy": _mean([m.accuracy for m in results]),
        "mean_ap": _mean([m.ap for m in generators]),
        "mean_roc_auc": _mean([m.roc_auc for m in generators]),
        "ap": float(average_precision_score(labels, probs_arr)) if _both_classes(labels) else None,
        "roc_auc": float(roc_auc_score(labels, probs_arr)) if _both_classes(labels) else None,
        "ece": expected_calibration_error(labels, probs_arr),
        "threshold": threshold,
        "tuned_threshold": tuned_threshold,
    }
    if training_sources is not None:
        summary["mean_ap_seen"] = _mean([m.ap for m in generators if m.seen_in_training])
        summary["mean_ap_unseen"] = _mean([m.ap for m in generators if not m.seen_in_training])
    if tuned_threshold is not None:
        summary["best_threshold_accuracy"] = float(
            ((probs_arr >= tuned_threshold).astype(int) == labels).mean()
        )
    return EvaluationResult(sources=results, summary=summary)


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None
