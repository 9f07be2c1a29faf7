"""Fixtures for the detector tests: a tiny demo dataset and a small frozen detector."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from datagen.demo import DemoConfig, generate_demo_dataset
from UniversalFakeDetect.models.detector import Detector
from UniversalFakeDetect.models.registry import build_backbone


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 32 px demo dataset: 80 train and 56 val images. Do not modify."""
    out = tmp_path_factory.mktemp("tiny") / "demo"
    return generate_demo_dataset(out, DemoConfig(size=32, train_images=80, val_images=56), False)


def frozen_detector(seed: int = 0) -> Detector:
    """A frozen, randomly initialised ResNet-18 detector for 28 px crops."""
    torch.manual_seed(seed)
    backbone = build_backbone("Imagenet:resnet18", weights="none", image_size=28)
    return Detector(backbone, dropout=0.5, fix_backbone=True).eval()
