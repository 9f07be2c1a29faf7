"""Monte Carlo dropout: T stochastic forward passes, as probabilities [T, N].

Two ways, for the two kinds of detector:

* Frozen backbone, cached features, dropout -> linear head: one dropout mask per pass shared
  by the whole pool ("consistent" MC dropout, as BatchBALD uses; every sample still sees T
  independent masks, so per-sample scores are unchanged in distribution). Folding the T masks
  into the head's weight gives one [N, D] x [D, T] product, done in row chunks so a 481k x 1024
  float16 cache never needs a float32 copy (:func:`linear_head_probabilities`).
* A trainable backbone: the whole model in eval mode (BatchNorm uses, and never updates, its
  running statistics) with only its Dropout modules in train mode (:func:`enable_mc_dropout`,
  :func:`module_probabilities`). Never ``model.train()``.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import nn

DROPOUT_TYPES = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
)
DEFAULT_CHUNK_ROWS = 32768  # 32768 x 1024 float32 = 128 MB of working buffer
DENSE_FRACTION = 0.5  # wanting this share of a span of rows: read the span, then pick


def draw_masks(passes: int, width: int, p: float, seed: int | Sequence[int]) -> np.ndarray:
    """T inverted-dropout masks [T, D] (float32): 0 with probability p, else 1/(1-p); ``seed``
    as numpy's ``default_rng`` takes it (an int, or several)."""
    if not 0 <= p < 1:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    rng = np.random.default_rng(seed)
    keep = rng.random((passes, width)) >= p
    return keep.astype(np.float32) / np.float32(1 - p)


def linear_head_probabilities(
    features: np.ndarray,
    weight: np.ndarray,
    bias: float,
    masks: np.ndarray,
    indices: np.ndarray | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> np.ndarray:
    """sigmoid((x * mask_t) . w + b) for every row x and pass t, as float32 [T, N].

    ``features`` [N_all, D] float16/float32 (a ``np.memmap`` is fine; only ``chunk_rows`` rows
    are converted to float32 at a time, into one reused buffer); ``weight`` [D] (or [1, D]);
    ``bias`` a number (or [1]); ``masks`` [T, D] already scaled (:func:`draw_masks`);
    ``indices`` the rows to score (default all, in order).
    """
    weight = np.asarray(weight, dtype=np.float32).reshape(-1)
    bias = float(np.asarray(bias, dtype=np.float64).reshape(-1)[0])
    masks = np.asarray(masks, dtype=np.float32)
    width = features.shape[1]
    if weight.size != width or masks.ndim != 2 or masks.shape[1] != width:
        raise ValueError(
            f"features width {width}, weight {weight.shape}, masks {masks.shape} disagree"
        )
    folded = torch.from_numpy(np.ascontiguousarray((masks * weight).T))  # [D, T]
    if indices is not None and len(indices):
        indices = np.asarray(indices, dtype=np.int64)
        low, high = int(indices.min()), int(indices.max()) + 1
        if len(indices) >= DENSE_FRACTION * (high - low):
            # most rows of their span wanted (a chunk of the unlabelled pool): read the span in
            # order (sequential reads of a mapped cache), no gather, then pick
            span = features[low:high]
            span = linear_head_probabilities(span, weight, bias, masks, None, chunk_rows)
            return np.ascontiguousarray(span[:, indices - low])
    rows = features.shape[0] if indices is None else len(indices)
    out = np.empty((rows, masks.shape[0]), dtype=np.float32)
    out_t = torch.from_numpy(out)
    # a numpy buffer, so that tracemalloc counts it with the rest (benchmarks/bench_query_step)
    buffer = torch.from_numpy(np.empty((min(chunk_rows, max(rows, 1)), width), np.float32))
    with torch.no_grad():
        for start in range(0, rows, chunk_rows):
            stop = min(start + chunk_rows, rows)
            block = (
                features[start:stop]
                if indices is None
                else features[np.asarray(indices[start:stop], dtype=np.int64)]
            )
            chunk = buffer[: stop - start]
            chunk.copy_(_as_tensor(np.ascontiguousarray(block)))
            torch.mm(chunk, folded, out=out_t[start:stop])
        out_t.add_(bias).sigmoid_()
    return np.ascontiguousarray(out.T)


def linear_head_mc_probabilities(
    features: np.ndarray,
    weight: np.ndarray,
    bias: float,
    dropout: float,
    passes: int,
    seed: int,
    indices: np.ndarray | None = None,
) -> np.ndarray:
    """T consistent MC-dropout passes of dropout(p) -> linear head over cached features:
    :func:`draw_masks` then :func:`linear_head_probabilities` ([T, N] float32)."""
    masks = draw_masks(passes, features.shape[1], dropout, seed)
    return linear_head_probabilities(features, weight, bias, masks, indices)


def _as_tensor(array: np.ndarray) -> torch.Tensor:
    """A tensor view of ``array`` (read-only memmaps included: it is only read)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array)


def enable_mc_dropout(model: nn.Module) -> nn.Module:
    """Eval mode for everything (BatchNorm frozen), train mode for Dropout modules only."""
    model.eval()
    for module in model.modules():
        if isinstance(module, DROPOUT_TYPES):
            module.train()
    return model


@contextlib.contextmanager
def mc_dropout(model: nn.Module) -> Iterator[nn.Module]:
    """``enable_mc_dropout`` for the block; every module's train/eval flag is restored after."""
    modes = {module: module.training for module in model.modules()}
    try:
        yield enable_mc_dropout(model)
    finally:
        for module, mode in modes.items():
            module.training = mode


def module_probabilities(
    model: nn.Module, inputs: torch.Tensor, passes: int, seed: int, batch_size: int = 1024
) -> np.ndarray:
    """sigmoid of ``model``'s logit for each input row in each of T MC-dropout passes [T, N].

    Masks are drawn per sample by torch's dropout from a generator seeded with ``seed`` (the
    global RNG is left as it was). The model's output must be [B] or [B, 1] logits.
    """
    device = next(model.parameters()).device
    cuda = [device.index or 0] if device.type == "cuda" else []
    out = np.empty((passes, len(inputs)), dtype=np.float32)
    with (
        torch.random.fork_rng(devices=cuda),
        torch.no_grad(),
        mc_dropout(model),
    ):
        if cuda:
            torch.manual_seed(seed)
        else:
            torch.default_generator.manual_seed(seed)  # CPU only: no lazy CUDA seeding
        for t in range(passes):
            for start in range(0, len(inputs), batch_size):
                batch = inputs[start : start + batch_size].to(device)
                logits = model(batch).reshape(len(batch))
                out[t, start : start + len(batch)] = torch.sigmoid(logits).float().cpu().numpy()
    return out
