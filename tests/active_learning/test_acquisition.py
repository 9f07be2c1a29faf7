"""Acquisition scores: hand-computed cases, an independent reference, the registry."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import expit, xlogy
from sklearn.metrics import log_loss

from active_learning import acquisition as acq
from active_learning.weighted_loss import query_weights

# Three candidates, T = 4 passes (columns are candidates).
PROBS = np.array(
    [
        [0.9, 0.5, 0.2],
        [0.9, 0.5, 0.6],
        [0.9, 0.5, 0.2],
        [0.9, 0.5, 0.6],
    ]
)


def h(q: float) -> float:
    """Binary entropy in nats, written out by hand."""
    return -(q * math.log(q) + (1 - q) * math.log(1 - q))


# --- independent references on two-column probabilities [1-p, p] ---------------------------


def two_column(probs: np.ndarray) -> np.ndarray:
    return np.stack([1 - probs, probs], axis=-1)  # [T, N, 2]


def ref_entropy(p2: np.ndarray) -> np.ndarray:
    return -xlogy(p2, p2).sum(axis=-1)


def ref_max_entropy(probs: np.ndarray) -> np.ndarray:
    return ref_entropy(two_column(probs).mean(axis=0))


def ref_bald(probs: np.ndarray) -> np.ndarray:
    p2 = two_column(probs)
    return ref_entropy(p2.mean(axis=0)) - ref_entropy(p2).mean(axis=0)


def ref_mean_std(probs: np.ndarray) -> np.ndarray:
    p2 = two_column(probs)
    return np.mean([np.std(p2[:, :, c], axis=0) for c in range(2)], axis=0)


def ref_var_ratios(probs: np.ndarray) -> np.ndarray:
    passes, n = probs.shape
    out = np.empty(n)
    for j in range(n):
        votes = np.bincount((probs[:, j] >= 0.5).astype(int), minlength=2)
        out[j] = 1 - votes.max() / passes
    return out


def ref_bce(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    return -(xlogy(y, p) + xlogy(1 - y, 1 - p))


def ref_norm(s: np.ndarray) -> np.ndarray:
    m = min(s.min(), 0.1)
    return (s - m) / (s.max() - m) + 1


REFERENCES = {
    "max_entropy": ref_max_entropy,
    "bald": ref_bald,
    "var_ratios": ref_var_ratios,
    "mean_std": ref_mean_std,
}


# --- hand-computed cases --------------------------------------------------------------------


def test_max_entropy_by_hand() -> None:
    expected = [h(0.9), math.log(2), h(0.4)]
    np.testing.assert_allclose(acq.max_entropy(PROBS), expected, rtol=1e-12)


def test_bald_by_hand() -> None:
    expected = [0.0, 0.0, h(0.4) - (h(0.2) + h(0.6)) / 2]
    np.testing.assert_allclose(acq.bald(PROBS), expected, rtol=1e-12, atol=1e-15)
    assert acq.bald(PROBS)[2] == pytest.approx(0.0863, abs=1e-4)


def test_var_ratios_by_hand() -> None:
    # column 1: p = 0.5 votes fake in every pass; column 2: two of four votes fake
    np.testing.assert_array_equal(acq.var_ratios(PROBS), [0.0, 0.0, 0.5])
    three_of_four = np.array([[0.7], [0.8], [0.9], [0.1]])
    assert acq.var_ratios(three_of_four)[0] == pytest.approx(0.25)


def test_mean_std_by_hand() -> None:
    np.testing.assert_allclose(acq.mean_std(PROBS), [0.0, 0.0, 0.2], atol=1e-15)


def test_uniform_scores_zero() -> None:
    np.testing.assert_array_equal(acq.uniform(PROBS), np.zeros(3))
    assert acq.uniform(np.zeros((0, 5))).shape == (5,)


def test_loss_weighted_by_hand() -> None:
    labels = np.array([1, 0, 0])
    scores = acq.loss_weighted_max_entropy(PROBS, labels)
    plain = np.array([h(0.9), math.log(2), h(0.4)])
    m = 0.1  # min(plain) = h(0.9) = 0.325 > 0.1
    w = (plain - m) / (plain.max() - m) + 1
    bce = np.array([-math.log(0.9), -math.log(0.5), -math.log(0.6)])
    np.testing.assert_allclose(scores, bce * w, rtol=1e-12)
    assert w[1] == pytest.approx(2.0)


def test_minmax_additive_norm_edge_cases() -> None:
    np.testing.assert_allclose(acq.minmax_additive_norm(np.array([0.0, 0.5, 1.0])), [1, 1.5, 2])
    # all above 0.1: m = 0.1, so the lowest weight is above 1
    np.testing.assert_allclose(acq.minmax_additive_norm(np.array([0.3, 0.5])), [1.5, 2.0])
    # all equal and <= 0.1 (uniform's zeros): every weight 1, no division by zero
    np.testing.assert_array_equal(acq.minmax_additive_norm(np.zeros(4)), np.ones(4))
    # all equal above 0.1: every weight 2
    np.testing.assert_array_equal(acq.minmax_additive_norm(np.full(3, 0.4)), np.full(3, 2.0))
    assert acq.minmax_additive_norm(np.zeros(0)).shape == (0,)


# --- the loss weight w with scores equal up to round-off (DESIGN section 6) -----------------


def design_weights(s: np.ndarray) -> list[float]:
    """w = (s - m) / (max(s) - m) + 1, m = min(min(s), 0.1), written out per element, with the
    documented round-off rule: every w is 1 when max(s) - m <= 1e-12 + 1e-12 * max|s|."""
    values = [float(x) for x in s]
    m = min(min(values), 0.1)
    spread = max(values) - m
    if spread <= 1e-12 + 1e-12 * max(abs(v) for v in values):
        return [1.0] * len(values)
    return [(x - m) / spread + 1.0 for x in values]


WEIGHT_CASES = {
    "spread_1e-16": np.array([0.0, 1e-16, 5e-17, 2e-16, 0.0]),
    "0.05_plus_round_off": 0.05 + np.array([0.0, 1.0, 2.0, 3.0]) * 1e-17,
    "negative_large_round_off": -50.0 + np.array([0.0, 1.0, 2.0]) * 7.2e-15,
    "normal_uniform": np.random.default_rng(5).random(64),
    "normal_above_floor": 0.2 + 0.5 * np.random.default_rng(6).random(64),
    "normal_tiny_but_real": np.array([0.0, 1e-9, 3e-9, 2e-9]),
    "equal_above_floor": np.full(5, 0.4),
    "equal_zero": np.zeros(5),
}


@pytest.mark.parametrize("case", sorted(WEIGHT_CASES))
def test_weights_follow_design_formula_with_round_off_rule(case: str) -> None:
    scores = WEIGHT_CASES[case]
    np.testing.assert_allclose(
        acq.minmax_additive_norm(scores), design_weights(scores), rtol=1e-15, atol=0
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["bald", "mean_std"])
def test_identical_passes_weigh_every_candidate_exactly_1(name: str, dtype: type) -> None:
    rng = np.random.default_rng(7)
    probs = np.tile(rng.random(300).astype(dtype), (10, 1))  # T = 10 identical passes
    labels = rng.integers(0, 2, size=300)
    plain = getattr(acq, name)(probs)
    assert plain.max() < 1e-14  # zero up to round-off
    np.testing.assert_array_equal(acq.minmax_additive_norm(plain), np.ones(300))
    # w = 1: the loss-weighted score is the loss itself, and every queried sample weighs 1
    lw = getattr(acq, f"loss_weighted_{name}")(probs, labels)
    np.testing.assert_allclose(lw, ref_bce(probs[0].astype(np.float64), labels), rtol=1e-12)
    np.testing.assert_array_equal(query_weights(plain), np.ones(300))


# --- BCE of the mean probability: no cliff at saturation ----------------------------------


def saturating_probs(dtype: type) -> np.ndarray:
    """P(fake) = sigmoid(z) computed in ``dtype`` over a dense grid of logits z (increasing),
    through both saturations: exact 0.0 (z < -104 in float32, < -745 in float64) and exact 1.0
    (z > 17 in float32, > 37 in float64), plus the extreme representable values themselves."""
    z = np.unique(
        np.concatenate(
            [
                np.linspace(-800, 800, 16001),
                np.linspace(-110, -100, 2001),
                np.linspace(-750, -740, 2001),
                np.linspace(10, 45, 7001),
            ]
        )
    )
    p = expit(z.astype(dtype))
    one, zero = dtype(1), dtype(0)
    extremes = [zero, np.nextafter(zero, one), np.nextafter(one, zero), one]
    return np.sort(np.concatenate([p, np.array(extremes, dtype=dtype)]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_is_monotone_and_continuous_across_saturation(dtype: type) -> None:
    p = saturating_probs(dtype)
    assert (p == 0).any() and (p == 1).any()
    bound = -math.log(np.finfo(dtype).epsneg)  # the loss of the last probability below 1
    for label in (0, 1):
        loss = acq.binary_cross_entropy(p, np.full(p.size, label))
        wrong = loss if label == 0 else loss[::-1]  # ordered by P(wrong class), increasing
        assert np.isfinite(wrong).all()
        assert (np.diff(wrong) >= 0).all(), f"not monotone for label {label}"
        # saturated probabilities score what their nearest representable neighbour scores
        saturated = p == (1 if label == 0 else 0)
        inside = loss[~saturated]
        nearest = inside[-1] if label == 0 else inside[0]
        np.testing.assert_allclose(loss[saturated], nearest, rtol=1e-12)
        assert nearest == pytest.approx(bound, rel=1e-12)
        assert wrong.max() == pytest.approx(bound, rel=1e-12)


@pytest.mark.parametrize("name", ["var_ratios", "mean_std"])
def test_loss_weighted_score_has_no_cliff_for_float32_passes(name: str) -> None:
    p = saturating_probs(np.float32)
    probs = np.tile(p, (10, 1))  # identical passes: w = 1, the score is the loss
    for label in (0, 1):
        scores = getattr(acq, f"loss_weighted_{name}")(probs, np.full(p.size, label))
        wrong = scores if label == 0 else scores[::-1]
        assert (np.diff(wrong) >= 0).all()
        assert wrong.max() == pytest.approx(-math.log(2.0**-24), rel=1e-12)  # 16.64


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_equals_sklearn_log_loss_when_not_saturated(dtype: type) -> None:
    p = expit(np.linspace(-13.8, 13.8, 201)).astype(dtype)  # [1e-6, 1 - 1e-6]
    for label in (0, 1):
        ours = acq.binary_cross_entropy(p, np.full(p.size, label))
        theirs = [log_loss([label], [float(q)], labels=[0, 1]) for q in p]
        # sklearn takes log(1 - p), we take log1p(-p): they differ by one ulp of 1 - p
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)


def test_bce_bound_is_the_last_probability_below_1_of_the_dtype() -> None:
    fake = np.array([1])
    assert acq.binary_cross_entropy(np.array([1.0]), fake)[0] == pytest.approx(0, abs=1e-15)
    zero64, zero32 = np.array([0.0]), np.array([0.0], dtype=np.float32)
    assert acq.binary_cross_entropy(zero64, fake)[0] == pytest.approx(53 * math.log(2))
    assert acq.binary_cross_entropy(zero32, fake)[0] == pytest.approx(24 * math.log(2))


# --- against the reference on random probabilities -----------------------------------------


@pytest.fixture(scope="module")
def random_probs() -> np.ndarray:
    rng = np.random.default_rng(7)
    probs = rng.beta(0.7, 0.7, size=(10, 200))
    probs[:, :5] = 0.3  # constant columns
    return probs


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_plain_scores_match_reference(name: str, random_probs: np.ndarray) -> None:
    ours = getattr(acq, name)(random_probs)
    np.testing.assert_allclose(ours, REFERENCES[name](random_probs), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_loss_weighted_match_reference(name: str, random_probs: np.ndarray) -> None:
    labels = np.random.default_rng(3).integers(0, 2, size=random_probs.shape[1])
    ours = getattr(acq, f"loss_weighted_{name}")(random_probs, labels)
    plain = REFERENCES[name](random_probs)
    expected = ref_bce(random_probs.mean(axis=0), labels) * ref_norm(plain)
    np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", ["bald", "var_ratios", "mean_std"])
def test_constant_column_scores_zero(name: str, random_probs: np.ndarray) -> None:
    scores = getattr(acq, name)(random_probs)
    np.testing.assert_allclose(scores[:5], 0.0, atol=1e-12)
    assert (scores[5:] > 0).any()


def test_scores_are_non_negative(random_probs: np.ndarray) -> None:
    for name in acq.PLAIN:
        assert (acq.score(name, random_probs) >= 0).all(), name


# --- registry and label-free counterparts ---------------------------------------------------


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("1", "uniform"),
        (2, "max_entropy"),
        ("3", "bald"),
        ("4", "var_ratios"),
        ("5", "mean_std"),
        ("6", "loss_weighted_max_entropy"),
        ("7", "loss_weighted_bald"),
        ("8", "loss_weighted_var_ratios"),
        ("9", "loss_weighted_mean_std"),
        ("0", "all"),
        ("bald", "bald"),
        ("all", "all"),
    ],
)
def test_resolve_name(value: str | int, name: str) -> None:
    assert acq.resolve_name(value) == name


def test_unknown_names_are_explained() -> None:
    with pytest.raises(ValueError, match="did you mean bald"):
        acq.resolve_name("bal")
    with pytest.raises(ValueError, match=r"0 .* to 9"):
        acq.resolve_name("10")
    with pytest.raises(ValueError, match="several strategies"):
        acq.get_acquisition(0)


def test_plain_strategies_in_original_order() -> None:
    assert acq.PLAIN == ("uniform", "max_entropy", "bald", "var_ratios", "mean_std")
    assert [acq.REGISTRY[n].needs_labels for n in acq.ORIGINAL] == [False] * 5 + [True] * 4
    assert [acq.REGISTRY[n].number for n in acq.ORIGINAL] == list(range(1, 10))


def test_stochastic_variants_share_their_base_score() -> None:
    for base in acq.ORIGINAL:
        for mode in acq.SAMPLINGS:
            variant = acq.REGISTRY[acq.resolve_name(f"{mode}_{base}")]
            assert variant.sampling == mode and variant.number == 0
            assert variant.function is acq.REGISTRY[base].function
            assert variant.needs_labels == acq.REGISTRY[base].needs_labels
    assert acq.resolve_name("badge") == "badge" and acq.REGISTRY["badge"].badge
    with pytest.raises(ValueError, match="power_NAME"):
        acq.resolve_name("powr_bald")


def test_loss_weighted_needs_labels_unless_label_free() -> None:
    with pytest.raises(ValueError, match="simulation only"):
        acq.score("loss_weighted_bald", PROBS)
    predicted = acq.predicted_labels(PROBS)
    np.testing.assert_array_equal(predicted, [1, 1, 0])  # p = 0.5 counts as fake
    free = acq.score("loss_weighted_max_entropy", PROBS, label_free=True)
    np.testing.assert_allclose(free, acq.loss_weighted_max_entropy(PROBS, predicted))
    # label_free ignores given labels; plain scores never read them
    wrong = np.array([0, 0, 1])
    np.testing.assert_allclose(
        acq.score("loss_weighted_max_entropy", PROBS, wrong, label_free=True), free
    )
    np.testing.assert_allclose(acq.score("bald", PROBS, wrong), acq.bald(PROBS))


def test_shape_errors() -> None:
    with pytest.raises(ValueError, match=r"\[T, N\]"):
        acq.bald(np.zeros(3))
    with pytest.raises(ValueError, match="labels must have shape"):
        acq.loss_weighted_bald(PROBS, np.array([0, 1]))
