"""The detector's trainer against torch's own references: the fused AdamW it uses updates as
torch's per-tensor AdamW does, and the channels-last layout it keeps for images changes no
logit."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from datagen.manifest import read_manifest, select
from tests.UniversalFakeDetect.engine.test_fit import make_trainer
from UniversalFakeDetect.data.datasets import EpochTrainViews, ManifestImageDataset
from UniversalFakeDetect.data.transforms import TransformConfig
from UniversalFakeDetect.engine.sources import ImageSource
from UniversalFakeDetect.engine.trainer import DetectorTrainer
from UniversalFakeDetect.models.factory import create_detector


def test_the_fused_adamw_updates_as_torchs_per_tensor_adamw(
    tiny_root: Path, tmp_path: Path
) -> None:
    """Differences of float rounding only (a wrong beta, decay or step would move the head by
    about the learning rate, 1e-2)."""
    fused = make_trainer(tiny_root, tmp_path / "features", lr=1e-2)
    fused._optimiser_args["weight_decay"] = 0.05
    fused.optimizer = fused._new_optimizer()
    assert fused.optimizer.defaults["fused"] is True
    reference = make_trainer(tiny_root, tmp_path / "features", lr=1e-2)
    reference.optimizer = torch.optim.AdamW(
        reference.detector.trainable_parameters(), lr=1e-2, betas=(0.9, 0.999),
        weight_decay=0.05, foreach=False,
    )  # fmt: skip
    for epoch in range(3):
        loss = fused.train_epoch(seed=epoch)
        assert loss == pytest.approx(reference.train_epoch(seed=epoch), rel=1e-4)
    moved = 0.0
    for (name, got), want in zip(
        fused.detector.fc.state_dict().items(),
        reference.detector.fc.state_dict().values(),
        strict=True,
    ):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5, msg=name)
        moved += float((got - fused._initial_state[f"fc.{name}"]).abs().sum())
    assert moved > 0  # the epochs changed the head


def test_images_train_in_channels_last_with_the_same_logits(tiny_root: Path) -> None:
    rows = select(read_manifest(tiny_root), split="train")[:8]
    transform = TransformConfig(load_size=32, crop_size=28)
    views = EpochTrainViews(transform, None, seed=0)
    source = ImageSource(ManifestImageDataset(tiny_root, rows, views, 28), "cpu")
    detector, _ = create_detector("Imagenet:resnet18", "none", 28, dropout=0.0)
    plain = copy.deepcopy(detector).eval()
    trainer = DetectorTrainer(detector, source, source, lr=1e-3, batch_size=4, progress=False)
    conv = trainer.detector.backbone.conv1.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    trainer.detector.eval()
    batch = next(iter(source.batches(np.arange(len(rows)), 8, 0, shuffle_seed=None)))
    with torch.no_grad():
        expected = plain(batch.inputs.contiguous())
        torch.testing.assert_close(trainer.detector(batch.inputs), expected, rtol=1e-4, atol=1e-5)


def test_training_dropout_masks_are_inverted_dropout_drawn_per_global_batch() -> None:
    """Each entry 0 or 1 / (1 - p), kept with probability 1 - p; fixed by (seed, epoch, step)
    alone, so that the rank training an image draws its row as one process does."""
    from UniversalFakeDetect.engine.trainer import batch_dropout_masks

    masks = batch_dropout_masks(5, 2, 3, batch_size=64, width=1000, p=0.25)
    assert masks.shape == (64, 1000)
    assert masks.unique().tolist() == pytest.approx([0.0, 1 / 0.75])
    assert abs(float((masks > 0).float().mean()) - 0.75) < 0.01
    assert torch.equal(masks, batch_dropout_masks(5, 2, 3, 64, 1000, 0.25))
    for other in ((6, 2, 3), (5, 3, 3), (5, 2, 4)):
        assert not torch.equal(masks, batch_dropout_masks(*other, 64, 1000, 0.25))
    # columns and rows independent: the masks are not one row repeated
    assert not torch.equal(masks[0], masks[1])


def test_the_head_applies_the_item_masks_in_training_only() -> None:
    detector, _ = create_detector("Imagenet:resnet18", "none", 28, dropout=0.5)
    features = torch.rand(2, detector.width)
    masks = item_dropout_masks_for(detector.width)
    detector.item_masks = masks
    detector.train()
    expected = (features * masks) @ detector.fc.weight[0] + detector.fc.bias
    torch.testing.assert_close(detector.head(features), expected)
    detector.eval()
    plain = features @ detector.fc.weight[0] + detector.fc.bias
    torch.testing.assert_close(detector.head(features), plain)


def item_dropout_masks_for(width: int) -> torch.Tensor:
    from UniversalFakeDetect.engine.trainer import batch_dropout_masks

    return batch_dropout_masks(0, 0, 0, batch_size=2, width=width, p=0.5)
