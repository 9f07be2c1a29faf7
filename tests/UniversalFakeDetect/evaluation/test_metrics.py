"""Metrics against scikit-learn on crafted predictions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from datagen.manifest import ManifestRow
from UniversalFakeDetect.evaluation.metrics import (
    best_threshold,
    evaluate_predictions,
    expected_calibration_error,
)


def make_rows(spec: list[tuple[str, int, int]]) -> list[ManifestRow]:
    """(source, label, count) -> rows."""
    rows = []
    for source, label, count in spec:
        family = "real" if label == 0 else "gan"
        rows += [
            ManifestRow(f"{source}/{i}.jpg", label, source, "val", family) for i in range(count)
        ]
    return rows


@pytest.fixture
def crafted() -> tuple[list[ManifestRow], np.ndarray]:
    rows = make_rows([("cc3m", 0, 40), ("celeba", 0, 20), ("ganA", 1, 30), ("ganB", 1, 25)])
    rng = np.random.default_rng(0)
    probs = np.concatenate(
        [
            rng.uniform(0.0, 0.6, 40),  # mostly right
            rng.uniform(0.3, 0.9, 20),  # often wrong
            rng.uniform(0.4, 1.0, 30),
            rng.uniform(0.1, 0.7, 25),
        ]
    )
    return rows, probs


def test_per_generator_ap_pools_all_reals(crafted) -> None:
    rows, probs = crafted
    result = evaluate_predictions(rows, probs)
    labels = np.array([r.label for r in rows])
    sources = np.array([r.source for r in rows])
    by_source = {m.source: m for m in result.sources}
    for generator in ("ganA", "ganB"):
        mask = (labels == 0) | (sources == generator)
        assert by_source[generator].ap == pytest.approx(
            average_precision_score(labels[mask], probs[mask])
        )
        assert by_source[generator].roc_auc == pytest.approx(
            roc_auc_score(labels[mask], probs[mask])
        )
    assert result.summary["mean_ap"] == pytest.approx(
        np.mean([by_source["ganA"].ap, by_source["ganB"].ap])
    )
    assert result.summary["ap"] == pytest.approx(average_precision_score(labels, probs))


def test_real_sources_report_accuracy_but_no_ap(crafted) -> None:
    rows, probs = crafted
    result = evaluate_predictions(rows, probs)
    for m in result.sources:
        mask = np.array([r.source == m.source for r in rows])
        expected = np.mean((probs[mask] >= 0.5).astype(int) == m.label)
        assert m.accuracy == pytest.approx(expected)
        if m.label == 0:
            assert m.ap is None and m.roc_auc is None


def test_decisions_replace_the_threshold_for_accuracy_only(crafted) -> None:
    rows, probs = crafted
    decisions = np.array([1, 0] * (len(rows) // 2) + [1] * (len(rows) % 2))
    result = evaluate_predictions(rows, probs, decisions=decisions)
    plain = evaluate_predictions(rows, probs)
    labels = np.array([r.label for r in rows])
    for m, p in zip(result.sources, plain.sources, strict=True):
        mask = np.array([r.source == m.source for r in rows])
        assert m.accuracy == pytest.approx(np.mean(decisions[mask] == m.label))
        assert m.ap == p.ap and m.roc_auc == p.roc_auc
    assert result.summary["accuracy"] == pytest.approx(np.mean(decisions == labels))
    assert result.summary["ece"] == plain.summary["ece"]
    with pytest.raises(ValueError, match="0 or 1"):
        evaluate_predictions(rows, probs, decisions=decisions * 2)
    with pytest.raises(ValueError, match="0 or 1"):
        evaluate_predictions(rows, probs, decisions=decisions[:-1])


def test_single_class_set_reports_accuracy_but_no_ap() -> None:
    rows = make_rows([("ganA", 1, 10)])
    probs = np.linspace(0.05, 0.95, 10)
    result = evaluate_predictions(rows, probs)
    assert result.sources[0].accuracy == pytest.approx(0.5)
    assert result.sources[0].ap is None
    assert result.summary["ap"] is None and result.summary["mean_ap"] is None


def test_seen_and_unseen_generator_means(crafted) -> None:
    rows, probs = crafted
    result = evaluate_predictions(rows, probs, training_sources={"cc3m", "ganA"})
    by_source = {m.source: m for m in result.sources}
    assert by_source["ganA"].seen_in_training and not by_source["ganB"].seen_in_training
    assert result.summary["mean_ap_seen"] == pytest.approx(by_source["ganA"].ap)
    assert result.summary["mean_ap_unseen"] == pytest.approx(by_source["ganB"].ap)


def test_expected_calibration_error_by_hand() -> None:
    labels = np.array([1, 1, 0, 0])
    probs = np.array([0.9, 0.9, 0.9, 0.2])
    # 5 bins over [0, 1]: confidence 0.9 in (0.8, 1], 3 images, accuracy 2/3;
    # confidence 1 - 0.2 = 0.8 in (0.6, 0.8], 1 image, accuracy 1
    expected = 3 / 4 * abs(2 / 3 - 0.9) + 1 / 4 * abs(1.0 - 0.8)
    assert expected_calibration_error(labels, probs, bins=5) == pytest.approx(expected)
    assert expected_calibration_error(np.array([1, 0]), np.array([1.0, 0.0])) == 0.0


def test_summary_ece_and_tuned_accuracy(crafted) -> None:
    rows, probs = crafted
    labels = np.array([r.label for r in rows])
    result = evaluate_predictions(rows, probs, tuned_threshold=0.42)
    assert result.summary["ece"] == expected_calibration_error(labels, probs, bins=15)
    assert result.summary["best_threshold_accuracy"] == pytest.approx(
        np.mean((probs >= 0.42).astype(int) == labels)
    )
    for m in result.sources:
        mask = np.array([r.source == m.source for r in rows])
        assert m.best_threshold_accuracy == pytest.approx(
            np.mean((probs[mask] >= 0.42).astype(int) == m.label)
        )


def test_best_threshold_is_the_midpoint_of_the_best_cut() -> None:
    assert best_threshold(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.3, 0.4])) == pytest.approx(
        0.25
    )
    # the tied 0.5s go together: the cut is between 0.5 and 0.9, not inside the tie
    assert best_threshold(np.array([0, 0, 1, 1]), np.array([0.5, 0.5, 0.5, 0.9])) == pytest.approx(
        0.7
    )
