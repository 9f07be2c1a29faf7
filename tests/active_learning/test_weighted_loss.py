"""The weighted loss: w^3 for new samples, 1 for initial ones, decay with floor 1 per epoch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F  # noqa: N812

from active_learning.weighted_loss import decay_weights, query_weights, weighted_bce_with_logits


def test_query_weights_are_cubed_normalised_scores() -> None:
    # scores 0, 0.5, 1 -> w = 1, 1.5, 2 -> w^3 = 1, 3.375, 8
    np.testing.assert_allclose(query_weights(np.array([0.0, 0.5, 1.0])), [1.0, 3.375, 8.0])
    # all above 0.1: m = 0.1 -> w = (0.3-0.1)/(0.5-0.1)+1 = 1.5 and 2
    np.testing.assert_allclose(query_weights(np.array([0.3, 0.5])), [1.5**3, 8.0])
    np.testing.assert_array_equal(query_weights(np.zeros(3)), np.ones(3))  # uniform


def test_decay_and_floor() -> None:
    weights = np.array([1.0, 8.0, 1.2])
    once = decay_weights(weights, 0.75)
    np.testing.assert_allclose(once, [1.0, 6.0, 1.0])
    np.testing.assert_allclose(decay_weights(once, 0.75), [1.0, 4.5, 1.0])
    np.testing.assert_array_equal(weights, [1.0, 8.0, 1.2])  # input untouched


def test_weighted_bce_is_the_per_sample_loss_times_its_weight() -> None:
    logits = torch.tensor([2.0, -1.0, 0.5, 0.0])
    targets = torch.tensor([1, 0, 0, 1])
    weights = torch.tensor([1.0, 8.0, 2.0, 1.0])
    p = torch.sigmoid(logits)
    per_sample = -(targets * torch.log(p) + (1 - targets) * torch.log(1 - p))
    expected = (per_sample * weights).mean()
    assert weighted_bce_with_logits(logits, targets, weights).item() == pytest.approx(
        expected.item(), rel=1e-6
    )
    plain = F.binary_cross_entropy_with_logits(logits, targets.float())
    assert weighted_bce_with_logits(logits, targets, torch.ones(4)).item() == pytest.approx(
        plain.item()
    )


def test_weighted_bce_gradient_scales_with_the_weight() -> None:
    logits = torch.tensor([0.3, 0.3], requires_grad=True)
    weighted_bce_with_logits(logits, torch.tensor([1, 1]), torch.tensor([1.0, 3.0])).backward()
    assert logits.grad[1].item() == pytest.approx(3 * logits.grad[0].item())
