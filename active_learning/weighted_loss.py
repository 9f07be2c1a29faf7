"""The weighted loss of DESIGN section 6: per-sample training weights and the weighted BCE.

* A newly queried sample gets weight w^3, w = minmax_additive_norm over the query's scores
  (w in [1, 2], so weights in [1, 8]); initial samples get 1.
* At the start of every epoch but the first of each training round, every weight is multiplied
  by the decay and floored at 1 (:func:`decay_weights`; the loop calls it).
* The loss is the mean over the batch of per-sample BCE times its weight.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F  # noqa: N812

from active_learning.acquisition import minmax_additive_norm


def query_weights(query_scores: np.ndarray) -> np.ndarray:
    """w^3 for each newly queried sample, w normalised over the query's own scores."""
    return minmax_additive_norm(query_scores) ** 3


def decay_weights(weights: np.ndarray, decay: float) -> np.ndarray:
    """max(weights * decay, 1): one epoch's decay (a new array)."""
    return np.maximum(np.asarray(weights, dtype=np.float64) * decay, 1.0)


def weighted_bce_with_logits(
    logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """mean_i(weights_i * BCE(sigmoid(logits_i), targets_i)); weights of 1 give plain BCE."""
    losses = F.binary_cross_entropy_with_logits(
        logits.reshape(-1), targets.reshape(-1).to(logits.dtype), reduction="none"
    )
    return (losses * weights.reshape(-1).to(losses.dtype)).mean()
