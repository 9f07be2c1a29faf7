"""The one training engine: epochs over chosen items with per-sample loss weights, validation on
held-out items, MC-dropout probabilities, state for resuming.

It is the model of the one training round (:mod:`rfd_common.training_round`: ``train_epoch``,
``validate``, ``lr``, ``snapshot``, ``restore``), run over all items with weight 1 by normal
training and, through the same methods plus ``mc_probabilities`` and ``state_dict``, as the
active-learning learner: there is no second training loop. The loss is
:func:`active_learning.weighted_loss.weighted_bce_with_logits`, the one weighted BCE.

Speed: when images pass through the backbone (an :class:`ImageSource`), the detector is kept
in the channels-last memory format, as the source hands over its batches (the same values, a
faster layout for convolutions on CPU and GPU), and everything that needs no gradient
(validation, tests, the MC-dropout pool features) runs under ``torch.inference_mode`` in larger
batches (:data:`EVAL_BATCH_FACTOR` times the training batch).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from sklearn.metrics import average_precision_score
from tqdm.auto import tqdm

from active_learning.mc_dropout import draw_masks, linear_head_probabilities
from active_learning.weighted_loss import weighted_bce_with_logits
from UniversalFakeDetect.engine.distributed import (
    broadcast_buffers,
    gather_shares,
    sum_over_ranks,
)
from UniversalFakeDetect.engine.sources import Batch, BatchSource, FeatureSource, ImageSource
from UniversalFakeDetect.features.shard import Shard
from UniversalFakeDetect.models.detector import Detector

EVAL_BATCH_FACTOR = 4  # batches without gradients: this many times the training batch
FUSED_ADAMW_DEVICES = ("cpu", "cuda")  # where torch has a fused AdamW kernel


@torch.inference_mode()
def predict(
    detector: Detector, source: BatchSource, batch_size: int, indices: np.ndarray | None = None
) -> np.ndarray:
    """P(fake) for ``indices`` of ``source`` (NaN for unreadable items), dropout off."""
    indices = np.arange(len(source)) if indices is None else np.asarray(indices)
    position = {int(i): p for p, i in enumerate(indices)}
    probs = np.full(len(indices), np.nan)
    detector.eval()
    for batch in source.batches(indices, batch_size, 0, shuffle_seed=None):
        if len(batch.indices):
            out = torch.sigmoid(source.logits(detector, batch.inputs)).float().cpu().numpy()
            probs[[position[int(i)] for i in batch.indices]] = out
    if shard_of(source) is not None:  # each rank predicted its share: gather the whole set
        probs = gather_shares(probs)
    return probs


def batch_dropout_masks(
    seed: int, epoch: int, step: int, batch_size: int, width: int, p: float
) -> torch.Tensor:
    """Inverted-dropout masks [batch_size, width] for the images of global batch ``step`` of an
    epoch, one row per position in that batch: the MC-dropout masks of
    :func:`~active_learning.mc_dropout.draw_masks`, seeded by (``seed``, ``epoch``, ``step``).
    A rank takes the rows of its share, so N ranks draw the masks one process draws."""
    return torch.from_numpy(draw_masks(batch_size, width, p, seed=[seed, epoch, step]))


def shard_of(source: BatchSource) -> Shard | None:
    """The rank's share a source serves under torchrun (None: every item, one process)."""
    return getattr(source, "shard", None)


def _ddp(detector: Detector, sync_bn: bool = False) -> torch.nn.Module:
    """``detector`` in DistributedDataParallel (the process group must exist); with
    ``sync_bn`` its BatchNorm layers become SyncBatchNorm (same parameters and buffers)."""
    from torch.nn.parallel import DistributedDataParallel

    if sync_bn:
        torch.nn.SyncBatchNorm.convert_sync_batchnorm(detector)
    device = next(detector.parameters()).device
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(detector, device_ids=device_ids)


class DetectorTrainer:
    """Trains ``detector`` on items of ``train_source``; validates on ``val_source``."""

    def __init__(
        self,
        detector: Detector,
        train_source: BatchSource,
        val_source: BatchSource,
        lr: float,
        beta1: float = 0.9,
        weight_decay: float = 0.0,
        batch_size: int = 64,
        progress: bool = True,
        channels_last: bool | None = None,
        sync_bn: bool = False,
    ) -> None:
        """``channels_last``: keep the detector in that memory format (default: when the
        training batches are images, i.e. the backbone runs on them). ``sync_bn``: under
        torchrun, BatchNorm over the global batch (GPUs only)."""
        if channels_last is None:
            channels_last = isinstance(train_source, ImageSource)
        if channels_last:
            detector.to(memory_format=torch.channels_last)
        self.detector = detector
        self.shard = shard_of(train_source)
        # what training batches pass through: the detector, or under torchrun its DDP wrapper
        # (each rank a share of every batch, gradients averaged over the ranks)
        self.model: torch.nn.Module = detector if self.shard is None else _ddp(detector, sync_bn)
        self.train_source = train_source
        self.val_source = val_source
        self.batch_size = batch_size
        self.progress = progress and (self.shard is None or self.shard.is_main)
        self._initial_state = self.model_state()
        self._optimiser_args = {"lr": lr, "betas": (beta1, 0.999), "weight_decay": weight_decay}
        self.optimizer = self._new_optimizer()
        self.epochs_run = 0

    def model_state(self) -> dict[str, torch.Tensor]:
        """A copy of the weights that training changes: the head only for a frozen backbone
        (never a second copy of a backbone that may hold hundreds of millions of parameters)."""
        state = self.detector.state_dict()
        if self.detector.fix_backbone:
            state = {k: v for k, v in state.items() if not k.startswith("backbone.")}
        return copy.deepcopy(state)

    def load_model_state(self, state: dict[str, torch.Tensor]) -> None:
        """Restore a :meth:`model_state`."""
        self.detector.load_state_dict(state, strict=not self.detector.fix_backbone)

    def snapshot(self) -> dict[str, torch.Tensor]:
        """The round's best-state copy: :meth:`model_state`."""
        return self.model_state()

    def restore(self, snapshot: dict[str, torch.Tensor]) -> None:
        """Back to a :meth:`snapshot` (the optimiser is left as it is)."""
        self.load_model_state(snapshot)

    def _new_optimizer(self) -> torch.optim.Optimizer:
        """AdamW; its fused kernel where every parameter allows it (the same update as the
        per-tensor loop up to float rounding, several times faster on CPU)."""
        parameters = list(self.detector.trainable_parameters())
        fused = all(
            p.is_floating_point() and p.device.type in FUSED_ADAMW_DEVICES for p in parameters
        )
        return torch.optim.AdamW(parameters, fused=fused or None, **self._optimiser_args)

    # -- the learner interface ------------------------------------------------------------
    def reset(self, seed: int) -> None:
        """Back to the initial weights and a fresh optimiser."""
        self.load_model_state(self._initial_state)
        self.optimizer = self._new_optimizer()
        self.epochs_run = 0
        torch.manual_seed(seed)

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    @lr.setter
    def lr(self, value: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = value

    def train_epoch(
        self, indices: np.ndarray | None = None, weights: np.ndarray | None = None, seed: int = 0
    ) -> float:
        """One epoch over ``indices`` (default: all train items) in a seeded order; the loss is
        the per-sample BCE times ``weights`` (aligned with ``indices``; default 1), averaged over
        each batch. Returns the mean loss."""
        source = self.train_source
        indices = np.arange(len(source)) if indices is None else np.asarray(indices)
        weight_of = np.ones(len(source), dtype=np.float32)
        if weights is not None:
            weight_of[indices] = weights
        torch.manual_seed(seed * 1_000_003 + self.epochs_run)  # any other random layer
        self.detector.train()
        total, count = 0.0, 0
        batches = source.batches(indices, self.batch_size, self.epochs_run, shuffle_seed=seed)
        bar = tqdm(
            batches,
            total=-(-len(indices) // self.batch_size),
            desc=f"epoch {self.epochs_run + 1}",
            unit="batch",
            disable=not self.progress,
            leave=False,
        )
        for batch in bar:
            step_loss = self._step(batch, weight_of, seed)
            if step_loss is not None:
                total += step_loss * len(batch.indices)
                count += len(batch.indices)
                bar.set_postfix(loss=f"{total / max(count, 1):.4f}")
        self.epochs_run += 1
        if self.shard is not None:
            broadcast_buffers(self.detector)
            total, count = sum_over_ranks([total, count], self.device)
        return total / max(count, 1)

    def _step(self, batch: Batch, weight_of: np.ndarray, seed: int) -> float | None:
        """One optimiser step on ``batch``; the batch's mean weighted loss (None: skipped).

        Under torchrun the batch is this rank's share of a global batch: its loss is scaled so
        that DDP's average of the ranks' gradients is the gradient of the mean over the whole
        global batch, as one process computes it. A rank whose share is empty still takes part
        (two blank images at weight 0: BatchNorm needs two in training), so that every rank
        runs every step."""
        count = len(batch.indices)
        scale = 1.0
        if self.shard is not None:
            total = sum_over_ranks([count], self.device)[0]
            if total == 0:
                return None
            scale = self.shard.world * max(count, 1) / total
        elif count == 0:
            return None
        inputs, labels, positions = batch.inputs, batch.labels, batch.global_positions()
        weights = weight_of[batch.indices]
        if count == 0:  # an empty share: blank images that change no gradient
            inputs = torch.zeros((2, *inputs.shape[1:]), device=inputs.device, dtype=inputs.dtype)
            labels, weights = torch.zeros(2, dtype=torch.int64), np.zeros(2, dtype=np.float32)
            positions = np.zeros(2, dtype=np.int64)
        logits = self._logits(inputs, positions, batch.step, seed)
        target = labels.float().to(logits.device)
        weight = torch.from_numpy(weights).to(logits.device)
        loss = weighted_bce_with_logits(logits, target, weight)
        self.optimizer.zero_grad(set_to_none=True)
        (loss * scale).backward()
        self.optimizer.step()
        return float(loss.item())

    def _logits(
        self, inputs: torch.Tensor, positions: np.ndarray, step: int, seed: int
    ) -> torch.Tensor:
        """Training logits; the head's dropout masks are the rows ``positions`` of the global
        batch's (:func:`batch_dropout_masks`)."""
        p = float(self.detector.dropout.p)
        if p > 0:
            masks = batch_dropout_masks(
                seed, self.epochs_run, step, self.batch_size, self.detector.width, p
            )
            rows = torch.from_numpy(np.asarray(positions, dtype=np.int64))
            self.detector.item_masks = masks[rows].to(inputs.device)
        try:
            return self.train_source.logits(self.model, inputs)  # type: ignore[arg-type]
        finally:
            self.detector.item_masks = None

    @property
    def device(self) -> torch.device:
        return next(self.detector.parameters()).device

    def predict(self, source: BatchSource, indices: np.ndarray | None = None) -> np.ndarray:
        """P(fake) for ``indices`` of ``source`` (NaN for unreadable items), dropout off."""
        return predict(self.detector, source, self.batch_size * EVAL_BATCH_FACTOR, indices)

    def validate(self) -> dict[str, float]:
        """Accuracy and AP on the validation items (unreadable ones skipped)."""
        probs = self.predict(self.val_source)
        keep = np.isfinite(probs)
        labels = self.val_source.labels[keep]
        probs = probs[keep]
        both = labels.size and labels.min() != labels.max()
        return {
            "acc": float(((probs >= 0.5).astype(int) == labels).mean()) if labels.size else 0.0,
            "ap": float(average_precision_score(labels, probs)) if both else 0.0,
        }

    @torch.inference_mode()
    def mc_probabilities(self, indices: np.ndarray, passes: int, seed: int) -> np.ndarray:
        """[passes, len(indices)] P(fake) with dropout on in the head, all else in eval mode.

        T dropout masks, each shared by every item of its pass, and one matrix product per
        chunk over the features (cached for a frozen backbone, else computed once with the
        backbone in eval mode): see DESIGN section 4 and :mod:`active_learning.mc_dropout`.
        """
        masks = draw_masks(passes, self.detector.width, self.detector.dropout.p, seed)
        weight, bias = self._head()
        source = self.train_source
        if isinstance(source, FeatureSource):
            return linear_head_probabilities(source.data[0], weight, bias, masks, indices)
        features = self.pool_features(indices)
        return linear_head_probabilities(features, weight, bias, masks)

    @torch.inference_mode()
    def head_inputs(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The head's inputs (the backbone's features) of pool items ``indices`` and P(fake)
        with dropout off, for BADGE's gradient embeddings."""
        weight, bias = self._head()
        source = self.train_source
        if isinstance(source, FeatureSource):
            features = np.asarray(source.data[0][np.asarray(indices, dtype=np.int64)])
        else:
            features = self.pool_features(indices)
        features = features.astype(np.float32, copy=False)
        logits = features.astype(np.float64) @ weight.astype(np.float64) + bias
        return features, 1.0 / (1.0 + np.exp(-logits))

    def _head(self) -> tuple[np.ndarray, float]:
        weight = self.detector.fc.weight.detach().float().cpu().numpy()[0]
        return weight, float(self.detector.fc.bias.detach().float().cpu()[0])

    def pool_features(self, indices: np.ndarray) -> np.ndarray:
        """The backbone's features of pool images ``indices`` (eval mode) [n, width]; under
        torchrun every rank computes its share and all receive every row."""
        indices = np.asarray(indices)
        source = self.train_source
        features = np.full((len(indices), self.detector.width), np.nan, dtype=np.float32)
        position = {int(i): p for p, i in enumerate(indices)}
        self.detector.eval()
        batch_size = self.batch_size * EVAL_BATCH_FACTOR
        for batch in source.batches(indices, batch_size, 0, shuffle_seed=None):
            if len(batch.indices):
                rows = [position[int(i)] for i in batch.indices]
                values = source.features(self.detector, batch.inputs).float().cpu().numpy()
                features[rows] = values
        if shard_of(source) is not None:  # each rank its share of the chunk: gathered
            features = gather_shares(features)
        return features

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model_state(),
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "epochs_run": self.epochs_run,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.load_model_state(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epochs_run = int(state["epochs_run"])
