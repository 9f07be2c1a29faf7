"""Acquisition scores: pure functions of MC-dropout probabilities, and their registry.

Every score takes ``probs`` of shape [T, N] (P(positive) = P(fake) in each of T dropout passes
over N candidates) and ``labels`` ([N] of 0/1, or ``None``) and returns [N] float64 scores,
higher = more worth labelling. No I/O, no model, no randomness: ``uniform`` scores every
candidate 0 and the selection breaks ties at random (:mod:`active_learning.selection`).

The loss-weighted scores (6-9) read the true label of every candidate: they exist only in
simulation, where the pool is labelled. :func:`score` with ``label_free=True`` runs them on the
predicted label (mean probability >= 0.5) instead, which works on an unlabelled pool.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import entr

ScoreFunction = Callable[[np.ndarray, "np.ndarray | None"], np.ndarray]

ALL = "all"  # --acq_func 0: the five plain strategies in turn
WEIGHT_FLOOR_SCORE = 0.1  # the 0.1 of the min-max additive normalisation (DESIGN section 6)
# Scores are "equal up to round-off" when max(s) - m <= SPREAD_ATOL + SPREAD_RTOL * max|s|.
# The plain scores are float64 functions of probabilities in [0, 1] (entropies, std, vote
# shares, all <= 1): their round-off is a few float64 ulps of 1 (about 1e-16 per operation,
# 1e-15 after a mean over T passes), so identical MC passes give spreads of ~1e-16, not 0.
# A real difference between candidates whose probabilities differ by one float32 step (6e-8)
# is 1e-8 for std and var ratios; only BALD's second-order 1e-15 falls under the bound, which
# is below what its difference of two entropies resolves anyway. The relative part keeps the
# rule scale-free for larger scores (e.g. the loss-weighted ones, up to 2 x 36.7).
SPREAD_RTOL = 1e-12
SPREAD_ATOL = 1e-12


def _as_probs(probs: np.ndarray) -> np.ndarray:
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2:
        raise ValueError(f"probabilities must have shape [T, N], got {probs.shape}")
    return probs


def binary_entropy(q: np.ndarray) -> np.ndarray:
    """H(q) = -q ln q - (1-q) ln(1-q) in nats, with 0 ln 0 = 0."""
    q = np.asarray(q, dtype=np.float64)
    out = entr(q)
    out += entr(1.0 - q)
    return out


def probability_resolution(dtype: np.dtype | type) -> float:
    """The gap between 1 and the largest ``dtype`` number below 1 (``np.finfo(dtype).epsneg``:
    2**-24 for float32, 2**-53 for float64; non-float dtypes count as float64)."""
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.floating):
        dtype = np.dtype(np.float64)
    return float(np.finfo(dtype).epsneg)


def binary_cross_entropy(p: np.ndarray, labels: np.ndarray, eps: float | None = None) -> np.ndarray:
    """Per-sample BCE(p, y) = -y ln p - (1-y) ln(1-p), with p clipped into [eps, 1 - eps].

    ``eps`` defaults to :func:`probability_resolution` of ``p``'s dtype, so 1 - eps is the
    largest probability below 1 that dtype holds: a probability that rounded to exactly 1.0
    (or 0.0) scores what its nearest representable neighbour scores, -ln(eps) (16.6 for
    float32, 36.7 for float64), for both classes alike. The loss is thus continuous across
    saturation and non-decreasing in the probability given to the wrong class (no jump to
    the 100 of torch's log clamp); inside [eps, 1 - eps] it is the exact BCE.
    """
    p = np.asarray(p)
    if eps is None:
        eps = probability_resolution(p.dtype)
    q = np.clip(p.astype(np.float64), eps, 1.0 - eps)
    y = np.asarray(labels, dtype=np.float64)
    return -(y * np.log(q) + (1 - y) * np.log1p(-q))


def minmax_additive_norm(
    scores: np.ndarray, bounds: tuple[float, float] | None = None
) -> np.ndarray:
    """w = (s - m) / (max(s) - m) + 1 with m = min(min(s), 0.1): weights in [1, 2].

    Every w is exactly 1 when the spread max(s) - m is round-off, i.e. at most
    ``SPREAD_ATOL + SPREAD_RTOL * max|s|`` (both 1e-12): all scores equal (e.g. uniform's
    zeros) or differing only by float error (identical MC passes) and <= 0.1. Equal scores
    above 0.1 keep the formula's w = 2 (their spread from m = 0.1 is real). ``bounds``: the
    (min, max) of the scores of every candidate, when ``scores`` are one chunk of them.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0:
        return s.copy()
    low, high = bounds if bounds is not None else (float(s.min()), float(s.max()))
    m = min(low, WEIGHT_FLOOR_SCORE)
    span = high - m
    if span <= SPREAD_ATOL + SPREAD_RTOL * max(abs(low), abs(high)):
        return np.ones_like(s)
    return (s - m) / span + 1.0


def predicted_labels(probs: np.ndarray) -> np.ndarray:
    """The predicted class of each candidate: 1 where the mean probability is >= 0.5."""
    return (_as_probs(probs).mean(axis=0) >= 0.5).astype(np.int64)


# --- the five plain scores ----------------------------------------------------------------


def uniform(probs: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
    """1: all zeros; the selection's random tie-breaking makes the choice uniform."""
    return np.zeros(np.shape(probs)[-1], dtype=np.float64)


def max_entropy(probs: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
    """2: predictive entropy H(p) of the mean probability p over the T passes."""
    return binary_entropy(_as_probs(probs).mean(axis=0))


def bald(probs: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
    """3: mutual information H(p) - mean_t H(p_t) (clipped at 0 against rounding)."""
    probs = _as_probs(probs)
    expected = binary_entropy(probs).mean(axis=0)
    return np.maximum(binary_entropy(probs.mean(axis=0)) - expected, 0.0)


def var_ratios(probs: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
    """4: 1 - (votes for the most frequent class) / T, a vote being p_t >= 0.5."""
    probs = _as_probs(probs)
    passes = probs.shape[0]
    positive = (probs >= 0.5).sum(axis=0)
    return 1.0 - np.maximum(positive, passes - positive) / passes


def mean_std(probs: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
    """5: mean over the two classes of std_t; both classes give std_t(p_t) (population std)."""
    return _as_probs(probs).std(axis=0)


# --- the loss-weighted scores (true labels: simulation only) ------------------------------


def _loss_weighted(plain: ScoreFunction, name: str) -> ScoreFunction:
    def score_fn(
        probs: np.ndarray,
        labels: np.ndarray | None = None,
        bounds: tuple[float, float] | None = None,
    ) -> np.ndarray:
        if labels is None:
            raise ValueError(
                f"{name} needs the labels of the candidates (true labels: simulation only); "
                "use label_free=True to score with the predicted labels"
            )
        eps = probability_resolution(np.asarray(probs).dtype)  # of the passes, not the mean
        probs = _as_probs(probs)
        labels = np.asarray(labels)
        if labels.shape != (probs.shape[1],):
            raise ValueError(f"labels must have shape ({probs.shape[1]},), got {labels.shape}")
        loss = binary_cross_entropy(probs.mean(axis=0), labels, eps=eps)
        return loss * minmax_additive_norm(plain(probs, None), bounds)

    score_fn.__name__ = name
    score_fn.__doc__ = (
        f"BCE(p, y) * minmax_additive_norm({plain.__name__}) over the candidates; "
        "reads the labels y (true labels: simulation only). ``bounds``: the (min, max) of "
        f"{plain.__name__} over every candidate, when ``probs`` are one chunk of them."
    )
    return score_fn


loss_weighted_max_entropy = _loss_weighted(max_entropy, "loss_weighted_max_entropy")
loss_weighted_bald = _loss_weighted(bald, "loss_weighted_bald")
loss_weighted_var_ratios = _loss_weighted(var_ratios, "loss_weighted_var_ratios")
loss_weighted_mean_std = _loss_weighted(mean_std, "loss_weighted_mean_std")


# --- registry -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Acquisition:
    """One strategy: its name, its original ``--acq_func`` number (0: none) and its score
    function; ``sampling`` names a stochastic batch acquisition of that score (Kirsch et al.
    2023), ``badge`` marks BADGE (Ash et al. 2020), which has no per-item score."""

    name: str
    number: int
    function: ScoreFunction
    needs_labels: bool  # reads the candidates' labels (true ones unless label_free)
    needs_probs: bool  # needs MC-dropout passes (uniform does not)
    plain: ScoreFunction | None = None  # a loss-weighted score's unweighted score
    sampling: str | None = None  # "power", "softmax" or "softrank": sample, do not take top-k
    badge: bool = False

    @property
    def needs_bounds(self) -> bool:
        """Whether a candidate's score depends on the plain scores' range over all of them."""
        return self.plain is not None


REGISTRY: dict[str, Acquisition] = {
    a.name: a
    for a in (
        Acquisition("uniform", 1, uniform, needs_labels=False, needs_probs=False),
        Acquisition("max_entropy", 2, max_entropy, needs_labels=False, needs_probs=True),
        Acquisition("bald", 3, bald, needs_labels=False, needs_probs=True),
        Acquisition("var_ratios", 4, var_ratios, needs_labels=False, needs_probs=True),
        Acquisition("mean_std", 5, mean_std, needs_labels=False, needs_probs=True),
        Acquisition(
            "loss_weighted_max_entropy", 6, loss_weighted_max_entropy, True, True, max_entropy
        ),
        Acquisition("loss_weighted_bald", 7, loss_weighted_bald, True, True, bald),
        Acquisition(
            "loss_weighted_var_ratios", 8, loss_weighted_var_ratios, True, True, var_ratios
        ),
        Acquisition("loss_weighted_mean_std", 9, loss_weighted_mean_std, True, True, mean_std),
    )
}
BY_NUMBER: dict[int, str] = {a.number: a.name for a in REGISTRY.values()}
PLAIN: tuple[str, ...] = tuple(a.name for a in REGISTRY.values() if not a.needs_labels)
SAMPLINGS = ("power", "softmax", "softrank")  # Kirsch et al. 2023, section 3
ORIGINAL = tuple(REGISTRY)  # the original's nine, numbered 1-9
for _base in ORIGINAL:
    for _mode in SAMPLINGS:
        _name = f"{_mode}_{_base}"
        REGISTRY[_name] = dataclasses.replace(REGISTRY[_base], name=_name, number=0, sampling=_mode)


def _no_score(probs: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
    """BADGE picks by its gradient embeddings (active_learning.badge), not by a score."""
    return np.zeros(np.shape(probs)[-1], dtype=np.float64)


REGISTRY["badge"] = Acquisition("badge", 0, _no_score, False, False, badge=True)


def resolve_name(value: str | int) -> str:
    """A registry name from a name or an original number; ``0`` / ``"all"`` -> ``"all"``.

    Raises ValueError listing the choices (and the closest name) for anything else.
    """
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        number = int(text)
        if number == 0:
            return ALL
        if number in BY_NUMBER:
            return BY_NUMBER[number]
        raise ValueError(f"unknown acquisition number {number}: choose 0 (all plain) to 9")
    if text == ALL or text in REGISTRY:
        return text
    close = difflib.get_close_matches(text, [*REGISTRY, ALL], n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise ValueError(
        f"unknown acquisition function {text!r}{hint}; choose one of: "
        + ", ".join(f"{REGISTRY[n].number} {n}" for n in ORIGINAL)
        + ", 0 all; or by name: power_NAME, softmax_NAME, softrank_NAME (stochastic batch "
        "acquisition of any of the nine), badge"
    )


def get_acquisition(value: str | int) -> Acquisition:
    """The strategy named by ``value`` (a name or 1..9)."""
    name = resolve_name(value)
    if name == ALL:
        raise ValueError("'all' (0) is several strategies; run them with compare.run_strategies")
    return REGISTRY[name]


def score(
    value: str | int,
    probs: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    label_free: bool = False,
    bounds: tuple[float, float] | None = None,
) -> np.ndarray:
    """Scores [N] of the strategy ``value``; ``label_free`` swaps labels for predicted ones.

    ``bounds``: for a loss-weighted strategy scored in chunks, the (min, max) of its plain
    score over every candidate (:func:`plain_bounds` of each chunk, combined).
    """
    acquisition = get_acquisition(value)
    if acquisition.needs_labels and label_free:
        labels = predicted_labels(probs)
    if acquisition.needs_bounds:
        return acquisition.function(probs, labels, bounds)  # type: ignore[call-arg]
    return acquisition.function(probs, labels if acquisition.needs_labels else None)


def plain_bounds(value: str | int, probs: np.ndarray) -> tuple[float, float] | None:
    """(min, max) of a loss-weighted strategy's plain score over ``probs``' candidates (None
    for the other strategies, and for no candidate)."""
    acquisition = get_acquisition(value)
    if acquisition.plain is None or np.shape(probs)[-1] == 0:
        return None
    plain = acquisition.plain(probs, None)
    return float(plain.min()), float(plain.max())


def combine_bounds(
    parts: list[tuple[float, float] | None],
) -> tuple[float, float] | None:
    """The (min, max) over several chunks' :func:`plain_bounds`."""
    found = [b for b in parts if b is not None]
    if not found:
        return None
    return min(b[0] for b in found), max(b[1] for b in found)
