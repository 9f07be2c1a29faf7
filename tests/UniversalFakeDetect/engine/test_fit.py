"""Training: weighted loss, early stopping with LR drop, resume after a kill."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from datagen.manifest import read_manifest, select
from tests.UniversalFakeDetect.conftest import frozen_detector
from UniversalFakeDetect.checkpoint import save_checkpoint
from UniversalFakeDetect.data.transforms import TransformConfig
from UniversalFakeDetect.engine.fit import EarlyStopping, FitConfig, fit
from UniversalFakeDetect.engine.sources import FeatureSource
from UniversalFakeDetect.engine.trainer import DetectorTrainer
from UniversalFakeDetect.features.extract import cached_features

TRANSFORM = TransformConfig(load_size=32, crop_size=28)


@pytest.fixture(scope="module")
def feature_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One feature cache shared by this module's trainers (features are computed once)."""
    return tmp_path_factory.mktemp("features")


def make_trainer(root: Path, cache_dir: Path, lr: float = 1e-2) -> DetectorTrainer:
    detector = frozen_detector()
    rows = read_manifest(root)
    sources = []
    for split in ("train", "val"):
        split_rows = select(rows, split=split)
        cache = cached_features(detector, root, split_rows, TRANSFORM, cache_dir, "cpu")
        labels = np.array([r.label for r in split_rows])
        sources.append(FeatureSource(cache, labels, "cpu", train_views=True))
    return DetectorTrainer(detector, sources[0], sources[1], lr=lr, batch_size=16, progress=False)


def run_fit(trainer: DetectorTrainer, folder: Path, niter: int = 4):
    return fit(
        trainer,
        FitConfig(niter=niter, seed=3, earlystop_epoch=2),
        folder,
        lambda path: save_checkpoint(trainer.detector, path, load_size=32, crop_size=28),
    )


def test_killed_training_resumes_to_the_same_result(
    tiny_root: Path, tmp_path: Path, feature_dir: Path
) -> None:
    reference = make_trainer(tiny_root, feature_dir)
    expected = run_fit(reference, tmp_path / "uninterrupted")

    trainer = make_trainer(tiny_root, feature_dir)
    original = trainer.train_epoch
    calls = {"n": 0}

    def killed_in_third_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    trainer.train_epoch = killed_in_third_epoch
    with pytest.raises(KeyboardInterrupt):
        run_fit(trainer, tmp_path / "killed")
    assert (tmp_path / "killed" / "resume_state.pt").is_file()

    fresh = make_trainer(tiny_root, feature_dir)
    resumed = run_fit(fresh, tmp_path / "killed")
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
    assert [h["loss"] for h in resumed.history] == pytest.approx(
        [h["loss"] for h in expected.history]
    )
    assert torch.allclose(fresh.detector.fc.weight, reference.detector.fc.weight)
    assert resumed.best_epoch == expected.best_epoch
    assert (tmp_path / "killed" / "model_best.safetensors").is_file()


def test_per_sample_weights_scale_the_loss(tiny_root: Path, feature_dir: Path) -> None:
    trainer = make_trainer(tiny_root, feature_dir, lr=1e-12)  # lr ~ 0: weights fixed
    indices = np.arange(10)
    trainer.detector.dropout.p = 0.0
    base = trainer.train_epoch(indices, np.ones(10, dtype=np.float32), seed=1)
    tripled = trainer.train_epoch(indices, np.full(10, 3.0, dtype=np.float32), seed=1)
    assert tripled == pytest.approx(3 * base, rel=1e-4)


def test_early_stopping_triggers_after_patience() -> None:
    stopper = EarlyStopping(patience=2, delta=0.01)
    decisions = [stopper.step(s) for s in (0.5, 0.6, 0.605, 0.6, 0.7, 0.69, 0.69)]
    assert decisions == ["improved", "improved", "wait", "trigger", "improved", "wait", "trigger"]


def test_lr_drops_tenfold_and_training_stops_below_the_floor(
    tiny_root: Path, tmp_path: Path, feature_dir: Path
) -> None:
    trainer = make_trainer(tiny_root, feature_dir, lr=1e-5)
    trainer.validate = lambda: {"acc": 0.5, "ap": 0.5}  # never improves after the first epoch
    state = fit(
        trainer,
        FitConfig(niter=50, earlystop_epoch=1, min_lr=5e-7),
        tmp_path / "run",
        lambda path: None,
        resume=False,
    )
    assert state.stopped and len(state.history) == 3
    assert [h["lr"] for h in state.history] == pytest.approx([1e-5, 1e-5, 1e-6])
    assert trainer.lr == pytest.approx(1e-7)
