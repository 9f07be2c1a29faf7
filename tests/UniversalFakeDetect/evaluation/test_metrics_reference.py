"""best_threshold and the ECE against independent reference computations written here."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score

from UniversalFakeDetect.evaluation.metrics import best_threshold, expected_calibration_error


def accuracy_at(labels: np.ndarray, probs: np.ndarray, threshold: float) -> float:
    """Accuracy of calling an image fake when its probability is >= threshold (project rule)."""
    return float(accuracy_score(labels, (probs >= threshold).astype(int)))


def brute_force_best_accuracy(labels: np.ndarray, probs: np.ndarray) -> float:
    """Best accuracy over every distinct score, every midpoint and values beyond both ends."""
    values = np.unique(probs)
    candidates = np.concatenate(
        [values, (values[:-1] + values[1:]) / 2, [values[0] - 1.0, values[-1] + 1.0]]
    )
    return max(accuracy_at(labels, probs, float(t)) for t in candidates)


def reference_ece(labels: np.ndarray, probs: np.ndarray, bins: int = 15) -> float:
    """Guo et al. (2017) top-label ECE as a plain loop: bins (m/M, (m+1)/M], the first with 0."""
    total = 0.0
    for m in range(bins):
        low, high = m / bins, (m + 1) / bins
        confidences, hits = [], []
        for label, p in zip(labels.tolist(), probs.tolist(), strict=True):
            predicted = 1 if p >= 0.5 else 0
            confidence = max(p, 1.0 - p)
            if low < confidence <= high or (m == 0 and confidence == 0.0):
                confidences.append(confidence)
                hits.append(1.0 if predicted == label else 0.0)
        if confidences:
            gap = abs(sum(hits) / len(hits) - sum(confidences) / len(confidences))
            total += len(confidences) / len(probs) * gap
    return total


def tied_scores(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores rounded to 1 or 2 decimals, some saturated at 0 and 1."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    labels = rng.integers(0, 2, n)
    probs = np.clip(labels * rng.uniform(0, 0.5) + rng.uniform(-0.2, 1.0, n), 0.0, 1.0)
    return labels, np.round(probs, int(rng.integers(1, 3)))


def assert_best(labels: np.ndarray, probs: np.ndarray) -> float:
    """best_threshold reaches the brute-force best accuracy and sits between distinct scores."""
    threshold = best_threshold(labels, probs)
    assert accuracy_at(labels, probs, threshold) == brute_force_best_accuracy(labels, probs)
    values = np.unique(probs)
    above = values[values >= threshold]
    below = values[values < threshold]
    if above.size and below.size:  # midway between the two distinct scores around the cut
        assert threshold == pytest.approx((below[-1] + above[0]) / 2, abs=1e-15)
    else:  # all fake or all real: just beyond the extreme score
        assert min(abs(threshold - values[0]), abs(threshold - values[-1])) <= 1e-6 + 1e-15
    return threshold


@pytest.mark.parametrize("seed", range(40))
def test_best_threshold_matches_brute_force_on_tied_scores(seed: int) -> None:
    assert_best(*tied_scores(seed))


@pytest.mark.parametrize("seed", range(10))
def test_best_threshold_matches_brute_force_on_saturated_scores(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(2, 200))
    labels = rng.integers(0, 2, n)
    # mostly right, but many confident mistakes: only exact 0.0 and 1.0
    probs = np.where(rng.uniform(size=n) < 0.7, labels, 1 - labels).astype(np.float64)
    assert_best(labels, probs)


def test_best_threshold_keeps_a_tie_on_one_side() -> None:
    # the old search cut between the tied real 0.5s and the tied fake 0.5 and returned 0.5,
    # which calls all three fake: accuracy 0.5 instead of 0.75
    labels, probs = np.array([0, 0, 1, 1]), np.array([0.5, 0.5, 0.5, 0.9])
    assert accuracy_at(labels, probs, best_threshold(labels, probs)) == 0.75
    assert best_threshold(labels, probs) == pytest.approx(0.7)
    # one tie only: best is all real (2 of 3), the old search returned 0.7 (all fake, 1 of 3)
    labels, probs = np.array([0, 0, 1]), np.array([0.7, 0.7, 0.7])
    assert accuracy_at(labels, probs, best_threshold(labels, probs)) == pytest.approx(2 / 3)
    assert best_threshold(labels, probs) > 0.7


def test_best_threshold_saturated_tie_at_zero() -> None:
    # 13 at 0.0 (10 real, then 3 fake), 14 at 1.0 (10 fake, then 4 real): best cut between 0
    # and 1 (20 of 27); the old search cut inside the 0.0 tie and returned 0.0: all fake, 13 of 27
    labels = np.array([0] * 10 + [1] * 3 + [1] * 10 + [0] * 4)
    probs = np.array([0.0] * 13 + [1.0] * 14)
    threshold = best_threshold(labels, probs)
    assert accuracy_at(labels, probs, threshold) == pytest.approx(20 / 27)
    assert threshold == 0.5
    assert_best(labels, probs)


def test_best_threshold_one_class_and_empty() -> None:
    probs = np.array([0.0, 0.2, 0.2, 1.0, 1.0])
    fake_threshold = assert_best(np.ones(5, dtype=int), probs)
    assert accuracy_at(np.ones(5, dtype=int), probs, fake_threshold) == 1.0
    real_threshold = assert_best(np.zeros(5, dtype=int), probs)
    assert accuracy_at(np.zeros(5, dtype=int), probs, real_threshold) == 1.0
    assert fake_threshold == pytest.approx(-1e-6) and real_threshold == pytest.approx(1 + 1e-6)
    assert best_threshold(np.array([], dtype=int), np.array([])) == 0.5


def test_best_threshold_neighbouring_floats_and_large_scores() -> None:
    low = 0.5
    high = float(np.nextafter(low, 1.0))
    labels = np.array([0, 1])
    assert accuracy_at(labels, np.array([low, high]), best_threshold(labels, [low, high])) == 1.0
    big = np.array([1e20, 1e20])
    assert best_threshold(np.array([0, 0]), big) > 1e20
    with pytest.raises(ValueError, match="finite"):
        best_threshold(np.array([0, 1]), np.array([0.2, np.nan]))
    with pytest.raises(ValueError, match=r"0 \(real\) or 1"):
        best_threshold(np.array([0, 2]), np.array([0.2, 0.3]))


@pytest.mark.parametrize("seed", range(20))
def test_ece_matches_reference_loop(seed: int) -> None:
    rng = np.random.default_rng(200 + seed)
    n = int(rng.integers(1, 400))
    labels = rng.integers(0, 2, n)
    probs = rng.uniform(0, 1, n)
    # some exactly on bin edges, at 0.5 and saturated
    edges = rng.integers(0, 16, n) / 15
    probs = np.where(rng.uniform(size=n) < 0.3, edges, probs)
    if seed % 3 == 0:
        probs = np.round(probs, 1)
    assert expected_calibration_error(labels, probs) == pytest.approx(
        reference_ece(labels, probs), abs=1e-12
    )
    assert expected_calibration_error(labels, probs, bins=7) == pytest.approx(
        reference_ece(labels, probs, bins=7), abs=1e-12
    )


def test_ece_all_in_one_bin() -> None:
    # confidences 0.94, 0.96, 0.95, 0.97 all in (14/15, 1]; 3 of 4 right
    labels = np.array([1, 0, 0, 1])
    probs = np.array([0.94, 0.96, 0.05, 0.97])
    assert expected_calibration_error(labels, probs) == pytest.approx(abs(0.75 - 0.955))
    # 0.55 and 0.59 share the bin (8/15, 9/15]: one right, one wrong (binning over [0.5, 1]
    # would part them and give 0.52)
    labels, probs = np.array([1, 0]), np.array([0.55, 0.59])
    assert expected_calibration_error(labels, probs) == pytest.approx(abs(0.5 - 0.57))


def test_ece_bins_are_closed_on_the_right() -> None:
    # 0.6 == 9/15 is the top of (8/15, 9/15], 0.61 is in the next bin
    labels, probs = np.array([1, 0]), np.array([0.6, 0.61])
    assert expected_calibration_error(labels, probs) == pytest.approx(0.5 * 0.4 + 0.5 * 0.61)
    assert reference_ece(labels, probs) == pytest.approx(0.5 * 0.4 + 0.5 * 0.61)


def test_ece_of_calibrated_and_saturated_data() -> None:
    # p = 0.8: 8 of 10 fake; p = 0.3: 7 of 10 real; p = 0.5: 2 of 4 fake -> ECE 0
    labels = np.array([1] * 8 + [0] * 2 + [1] * 3 + [0] * 7 + [1, 1, 0, 0])
    probs = np.array([0.8] * 10 + [0.3] * 10 + [0.5] * 4)
    assert expected_calibration_error(labels, probs) == pytest.approx(0.0, abs=1e-12)
    # saturated: confidence 1 everywhere, so ECE is the error rate
    labels = np.array([1, 1, 0, 0, 1])
    probs = np.array([1.0, 0.0, 0.0, 1.0, 1.0])
    assert expected_calibration_error(labels, probs) == pytest.approx(2 / 5)


def test_ece_empty_and_invalid() -> None:
    assert np.isnan(expected_calibration_error(np.array([], dtype=int), np.array([])))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        expected_calibration_error(np.array([1]), np.array([1.5]))
    with pytest.raises(ValueError, match="bins"):
        expected_calibration_error(np.array([1]), np.array([0.5]), bins=0)
