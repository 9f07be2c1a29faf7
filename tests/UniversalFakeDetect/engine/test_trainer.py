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
