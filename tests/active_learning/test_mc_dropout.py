"""MC dropout: cached-feature passes equal module-level passes for the same masks; eval mode
with dropout on; chunking, float16 and index selection change nothing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from active_learning.mc_dropout import (
    draw_masks,
    enable_mc_dropout,
    linear_head_mc_probabilities,
    linear_head_probabilities,
    mc_dropout,
    module_probabilities,
)

WIDTH, P = 16, 0.5


@pytest.fixture
def head() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Dropout(P), nn.Linear(WIDTH, 1))


@pytest.fixture
def features() -> np.ndarray:
    return np.random.default_rng(1).standard_normal((7, WIDTH)).astype(np.float32)


def torch_mask(seed: int) -> np.ndarray:
    """The mask torch's Dropout draws for a [1, WIDTH] input after manual_seed(seed)."""
    torch.manual_seed(seed)
    return nn.functional.dropout(torch.ones(1, WIDTH), P, training=True).numpy()[0]


def test_cached_features_equal_module_for_the_same_masks(head, features) -> None:
    seeds = [11, 12, 13, 14, 15]
    masks = np.stack([torch_mask(s) for s in seeds])  # [T, D], values 0 or 2
    assert set(np.unique(masks)) <= {0.0, 1 / (1 - P)}
    enable_mc_dropout(head)
    module = np.empty((len(seeds), len(features)))
    with torch.no_grad():
        for t, seed in enumerate(seeds):
            for n, row in enumerate(features):
                torch.manual_seed(seed)  # the same mask for every sample in pass t
                module[t, n] = torch.sigmoid(head(torch.from_numpy(row)[None]))[0, 0]
    cached = linear_head_probabilities(
        features, head[1].weight.detach().numpy(), head[1].bias.detach().item(), masks
    )
    assert cached.shape == (5, 7)
    np.testing.assert_allclose(cached, module, rtol=1e-5, atol=1e-6)
    assert cached.std(axis=0).max() > 0.01  # the passes differ


def test_chunks_float16_and_indices_change_nothing(features) -> None:
    rng = np.random.default_rng(2)
    feats = rng.standard_normal((1000, WIDTH)).astype(np.float16)
    weight, masks = rng.standard_normal(WIDTH), draw_masks(6, WIDTH, 0.3, seed=4)
    whole = linear_head_probabilities(feats, weight, 0.2, masks, chunk_rows=4096)
    chunked = linear_head_probabilities(feats, weight, 0.2, masks, chunk_rows=37)
    np.testing.assert_allclose(whole, chunked, rtol=1e-5)
    logits = feats.astype(np.float64) @ (masks * weight).T + 0.2
    np.testing.assert_allclose(whole, (1 / (1 + np.exp(-logits))).T, rtol=1e-5)
    idx = np.array([999, 3, 500, 4])  # a few rows: gathered chunk by chunk
    picked = linear_head_probabilities(feats, weight, 0.2, masks, indices=idx, chunk_rows=3)
    np.testing.assert_allclose(picked, whole[:, idx], rtol=1e-5)
    most = np.random.default_rng(0).permutation(np.arange(5, 995))  # most rows: streamed
    picked = linear_head_probabilities(feats, weight, 0.2, masks, indices=most, chunk_rows=64)
    np.testing.assert_allclose(picked, whole[:, most], rtol=1e-5)


def test_one_call_helper_and_array_bias() -> None:
    feats = np.random.default_rng(5).standard_normal((30, WIDTH)).astype(np.float16)
    weight = np.random.default_rng(6).standard_normal((1, WIDTH))  # a torch head's [1, D]
    probs = linear_head_mc_probabilities(feats, weight, np.array([0.3]), P, 4, seed=8)
    masks = draw_masks(4, WIDTH, P, seed=8)
    np.testing.assert_array_equal(probs, linear_head_probabilities(feats, weight, 0.3, masks))
    assert probs.shape == (4, 30) and probs.dtype == np.float32


def test_memmap_features(tmp_path) -> None:
    path = tmp_path / "features.f16"
    feats = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(50, WIDTH))
    feats[:] = np.random.default_rng(0).standard_normal((50, WIDTH))
    feats.flush()
    readonly = np.load(path, mmap_mode="r")
    masks = draw_masks(3, WIDTH, P, seed=0)
    weight = np.ones(WIDTH)
    np.testing.assert_allclose(
        linear_head_probabilities(readonly, weight, 0.0, masks),
        linear_head_probabilities(np.array(feats), weight, 0.0, masks),
    )


def test_draw_masks() -> None:
    masks = draw_masks(200, 64, 0.25, seed=3)
    assert masks.shape == (200, 64) and masks.dtype == np.float32
    assert set(np.unique(masks)) == {0.0, np.float32(1 / 0.75)}
    assert (masks == 0).mean() == pytest.approx(0.25, abs=0.02)
    np.testing.assert_array_equal(masks, draw_masks(200, 64, 0.25, seed=3))
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        draw_masks(1, 4, 1.0, seed=0)


def bn_model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(8, 1))  # fmt: skip


def test_enable_mc_dropout_freezes_batchnorm() -> None:
    model = bn_model().train()
    enable_mc_dropout(model)
    assert [m.training for m in model] == [False, False, False, True, False]
    running = model[1].running_mean.clone()
    x = torch.randn(32, 8)
    with torch.no_grad():
        outputs = torch.stack([model(x) for _ in range(5)])
    assert torch.equal(model[1].running_mean, running)  # statistics never updated
    assert outputs.std(dim=0).max() > 0  # dropout is on


def test_mc_dropout_context_restores_modes() -> None:
    model = bn_model().train()
    with mc_dropout(model):
        assert not model[1].training and model[3].training
    assert all(m.training for m in model.modules())
    model.eval()
    with mc_dropout(model):
        pass
    assert not any(m.training for m in model.modules())


def test_module_probabilities_seeded_and_leaves_global_rng() -> None:
    model = bn_model()
    x = torch.randn(20, 8)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = module_probabilities(model, x, passes=4, seed=9, batch_size=7)
    after = torch.rand(1)
    assert torch.equal(before, after)  # the global generator was not consumed
    b = module_probabilities(model, x, passes=4, seed=9, batch_size=7)
    assert a.shape == (4, 20) and ((a > 0) & (a < 1)).all()
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, module_probabilities(model, x, passes=4, seed=10))
    assert model.training  # restored
