"""Per-source metrics of a detector's probabilities.

Accuracy per source (real accuracy for real sources, fake accuracy for fake ones: the paper's
tables); per generator, AP and ROC-AUC of that generator's fakes against *all* real images of
the evaluated set (AP of a single-class subset is meaningless); means over generators;
calibration (top-label expected calibration error, 15 equal-width bins over [0, 1]).
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


ECE_BINS = 15
"""Bins of the expected calibration error: equal-width over [0, 1], as in Guo et al. (2017)."""

_EDGE_MARGIN = 1e-6
"""How far below the lowest / above the highest score the 'all fake' / 'all real' threshold is."""


def expected_calibration_error(
    labels: np.ndarray, probs: np.ndarray, bins: int = ECE_BINS
) -> float:
    """Top-label expected calibration error (Guo et al. 2017) of probabilities of fake.

    Each image is predicted fake when ``p >= 0.5`` and real otherwise; its confidence is the
    probability of the predicted class, ``max(p, 1 - p)``, and it is correct when the prediction
    equals its label. Confidences go into ``bins`` equal-width bins over [0, 1]: bin ``m`` holds
    ``m / bins < c <= (m + 1) / bins``, the first bin also ``c = 0``. Then
    ``ECE = sum_m |B_m| / N * |acc(B_m) - conf(B_m)|`` with ``acc`` the fraction correct and
    ``conf`` the mean confidence of bin ``m``; empty bins add nothing. As ``c >= 0.5``, only the
    upper bins fill (with 15 bins, those from (7/15, 8/15] up). Returns NaN for no images.
    """
    labels = np.asarray(labels).ravel()
    probs = np.asarray(probs, dtype=np.float64).ravel()
    if labels.shape != probs.shape:
        raise ValueError(f"{labels.size} labels but {probs.size} probabilities")
    if bins < 1:
        raise ValueError(f"bins must be at least 1, not {bins}")
    if not ((probs >= 0.0) & (probs <= 1.0)).all():
        raise ValueError("probabilities must lie in [0, 1]")
    if probs.size == 0:
        return float("nan")
    predicted = (probs >= 0.5).astype(int)
    confidence = np.where(predicted == 1, probs, 1.0 - probs)
    correct = (predicted == labels).astype(np.float64)
    edges = np.arange(bins + 1) / bins
    # side="left": a confidence equal to an upper edge belongs to the bin below it, (lo, hi]
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    gap = np.bincount(index, weights=correct, minlength=bins) - np.bincount(
        index, weights=confidence, minlength=bins
    )
    return float(np.abs(gap).sum() / probs.size)


def best_threshold(labels: np.ndarray, probs: np.ndarray) -> float:
    """The threshold on P(fake) of highest accuracy, images being called fake when ``p >= t``.

    Every cut between two neighbouring distinct scores is tried, plus 'all fake' and 'all real';
    equal scores always fall on the same side, so applying the result with ``p >= t`` gives
    exactly the best accuracy any threshold reaches. The threshold is midway between the two
    distinct scores around the best cut (the higher score where the two are too close for a
    midpoint); 'all fake' gives ``min - 1e-6`` and 'all real' ``max + 1e-6`` (or the next float
    above ``max``). Among equally accurate cuts the lowest threshold wins. With one class only,
    the result calls every image that class; with no images it is 0.5. O(N log N).
    """
    labels = np.asarray(labels).ravel()
    probs = np.asarray(probs, dtype=np.float64).ravel()
    if labels.shape != probs.shape:
        raise ValueError(f"{labels.size} labels but {probs.size} probabilities")
    if not np.isin(labels, (REAL, FAKE)).all():
        raise ValueError("labels must be 0 (real) or 1 (fake)")
    if not np.isfinite(probs).all():
        raise ValueError("scores must be finite")
    if probs.size == 0:
        return 0.5
    values, group = np.unique(probs, return_inverse=True)  # sorted distinct scores
    fake = labels.astype(bool)
    fakes = np.bincount(group[fake], minlength=values.size)
    reals = np.bincount(group[~fake], minlength=values.size)
    # cut j (0..len(values)): groups j and above are called fake, the groups below real
    reals_below = np.concatenate([[0], np.cumsum(reals)])
    fakes_above = fakes.sum() - np.concatenate([[0], np.cumsum(fakes)])
    cut = int(np.argmax(reals_below + fakes_above))
    if cut == 0:
        return float(values[0] - _EDGE_MARGIN)
    if cut == values.size:
        top = values[-1]
        above = top + _EDGE_MARGIN
        return float(above if above > top else np.nextafter(top, np.inf))
    low, high = values[cut - 1], values[cut]
    middle = 0.5 * low + 0.5 * high
    return float(middle if low < middle <= high else high)


def _both_classes(labels: np.ndarray) -> bool:
    return bool(labels.size) and labels.min() != labels.max()


def _decided(
    probs: np.ndarray, labels: np.ndarray, threshold: float, decisions: Sequence[int] | None
) -> np.ndarray:
    """The 0/1 decision per row: ``probs >= threshold``, or the ``decisions`` given."""
    if decisions is None:
        return (probs >= threshold).astype(int)
    decided = np.asarray(decisions, dtype=int)
    if decided.shape != labels.shape or not np.isin(decided, (REAL, FAKE)).all():
        raise ValueError(f"decisions must be {len(labels)} values of 0 or 1")
    return decided


def _source_metrics(
    source: str, rows: Sequence[ManifestRow], mask: np.ndarray, labels: np.ndarray,
    probs: np.ndarray, decided: np.ndarray, tuned_threshold: float | None,
    training_sources: set[str] | None,
) -> SourceMetrics:  # fmt: skip
    """One source's row: accuracy, and for a generator AP and ROC-AUC against all reals."""
    label = int(labels[mask][0])
    family = next(r.family for r in rows if r.source == source) or (
        "real" if label == REAL else "unknown"
    )
    metrics = SourceMetrics(
        source=source,
        family=family,
        label=label,
        images=int(mask.sum()),
        accuracy=float((decided[mask] == labels[mask]).mean()),
        seen_in_training=None if training_sources is None else source in training_sources,
    )
    if tuned_threshold is not None:
        tuned = (probs[mask] >= tuned_threshold).astype(int)
        metrics.best_threshold_accuracy = float((tuned == labels[mask]).mean())
    real_mask = labels == REAL
    if label == FAKE and real_mask.any():
        pooled = mask | real_mask
        metrics.ap = float(average_precision_score(labels[pooled], probs[pooled]))
        metrics.roc_auc = float(roc_auc_score(labels[pooled], probs[pooled]))
    return metrics


def _summary(
    results: list[SourceMetrics], labels: np.ndarray, probs: np.ndarray, decided: np.ndarray,
    threshold: float, tuned_threshold: float | None, training_sources: set[str] | None,
) -> dict[str, float | int | None]:  # fmt: skip
    """The overall numbers: accuracies, means over generators, pooled AP/AUC, ECE."""
    generators = [m for m in results if m.label == FAKE and m.ap is not None]
    both = _both_classes(labels)
    summary: dict[str, float | int | None] = {
        "images": len(labels),
        "accuracy": float((decided == labels).mean()),
        "real_accuracy": _mean([m.accuracy for m in results if m.label == REAL]),
        "fake_accuracy": _mean([m.accuracy for m in results if m.label == FAKE]),
        "mean_source_accuracy": _mean([m.accuracy for m in results]),
        "mean_ap": _mean([m.ap for m in generators]),
        "mean_roc_auc": _mean([m.roc_auc for m in generators]),
        "ap": float(average_precision_score(labels, probs)) if both else None,
        "roc_auc": float(roc_auc_score(labels, probs)) if both else None,
        "ece": expected_calibration_error(labels, probs),
        "threshold": threshold,
        "tuned_threshold": tuned_threshold,
    }
    if training_sources is not None:
        summary["mean_ap_seen"] = _mean([m.ap for m in generators if m.seen_in_training])
        summary["mean_ap_unseen"] = _mean([m.ap for m in generators if not m.seen_in_training])
    if tuned_threshold is not None:
        tuned = (probs >= tuned_threshold).astype(int)
        summary["best_threshold_accuracy"] = float((tuned == labels).mean())
    return summary


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
    decided = _decided(probs_arr, labels, threshold, decisions)
    results = [
        _source_metrics(
            source,
            rows,
            sources == source,
            labels,
            probs_arr,
            decided,
            tuned_threshold,
            training_sources,
        )
        for source in sorted(set(sources.tolist()))
    ]
    summary = _summary(
        results, labels, probs_arr, decided, threshold, tuned_threshold, training_sources
    )
    return EvaluationResult(sources=results, summary=summary)


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None
