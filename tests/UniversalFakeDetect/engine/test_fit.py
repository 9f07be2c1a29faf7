"""Normal training: the shared training round's rule, the weighted loss, resume after a kill."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from active_learning.weighted_loss import weighted_bce_with_logits
from datagen.manifest import read_manifest, select
from rfd_common.errors import UserError
from tests.rfd_common.test_training_round import original_training
from tests.UniversalFakeDetect.conftest import frozen_detector
from UniversalFakeDetect.checkpoint import save_checkpoint
from UniversalFakeDetect.data.transforms import TransformConfig
from UniversalFakeDetect.engine import trainer as trainer_module
from UniversalFakeDetect.engine.fit import RESUME_NAME, FitConfig, fit
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


def scripted(trainer: DetectorTrainer, accs: list[float], aps: list[float] | None = None):
    """Make ``trainer.validate`` follow a script (acc, and ap: 1 - acc unless given)."""
    scores = iter(zip(accs, aps or [1 - a for a in accs], strict=True))

    def validate() -> dict[str, float]:
        acc, ap = next(scores)
        return {"acc": acc, "ap": ap}

    trainer.validate = validate


def test_fit_follows_the_original_rule_and_saves_the_best(
    tiny_root: Path, tmp_path: Path, feature_dir: Path
) -> None:
    accs = [0.5, 0.6, 0.6, 0.601, 0.55, 0.58, 0.581, 0.5, 0.4, 0.3]
    trainer = make_trainer(tiny_root, feature_dir, lr=1e-3)
    scripted(trainer, accs)
    saved: list[str] = []
    state = fit(
        trainer,
        FitConfig(niter=len(accs), earlystop_epoch=2, min_lr=1e-5),
        tmp_path / "run",
        lambda path: saved.append(path.name),
        resume=False,
    )
    expected = original_training(accs, 2, 1e-3, 1e-5, len(accs))
    assert [h["lr"] for h in state.history] == expected["lrs"]
    assert state.stopped == (expected["stop"] is not None)
    assert state.best_epoch == 4  # 0.601: the highest score, before the first drop
    assert saved == ["model_best.safetensors"] * 3  # epochs 1, 2 and 4 (0.6 ties are not)


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
    # epoch 2 ties epoch 1: lr / 10; epoch 3 sets the new stage's reference, epoch 4 ties it:
    # lr / 10 again, below the floor: stop
    assert state.stopped and len(state.history) == 4
    assert [h["lr"] for h in state.history] == pytest.approx([1e-5, 1e-5, 1e-6, 1e-6])
    assert trainer.lr == pytest.approx(1e-7)


def test_early_stopping_is_on_accuracy_by_default_and_on_ap_on_request(
    tiny_root: Path, tmp_path: Path, feature_dir: Path
) -> None:
    accs, aps = [0.5, 0.7, 0.6], [0.9, 0.6, 0.8]
    for metric, best in ((None, 2), ("ap", 1)):
        trainer = make_trainer(tiny_root, feature_dir)
        scripted(trainer, accs, aps)
        config = FitConfig(niter=3, earlystop_epoch=5)
        if metric:
            config.earlystop_metric = metric
        state = fit(trainer, config, tmp_path / str(metric), lambda path: None, resume=False)
        assert state.best_epoch == best, metric


def test_training_ends_in_the_best_epochs_weights(
    tiny_root: Path, tmp_path: Path, feature_dir: Path
) -> None:
    one = make_trainer(tiny_root, feature_dir)
    fit(one, FitConfig(niter=1, seed=3), tmp_path / "one", lambda path: None, resume=False)
    trainer = make_trainer(tiny_root, feature_dir)
    scripted(trainer, [0.8, 0.7, 0.6])  # the first epoch is the best
    state = fit(trainer, FitConfig(niter=3, seed=3), tmp_path / "three", lambda path: None)
    assert state.best_epoch == 1 and trainer.epochs_run == 3
    assert torch.equal(trainer.detector.fc.weight, one.detector.fc.weight)


def test_the_trainers_loss_is_the_weighted_bce_function(
    tiny_root: Path, feature_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[float] = []

    def spy(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        loss = weighted_bce_with_logits(logits, targets, weights)
        calls.append(loss.item())
        return loss

    monkeypatch.setattr(trainer_module, "weighted_bce_with_logits", spy)
    trainer = make_trainer(tiny_root, feature_dir, lr=1e-12)  # lr ~ 0: the head stays put
    trainer.detector.dropout.p = 0.0
    indices, weights = np.arange(3, 13), np.linspace(1.0, 8.0, 10)
    expected = weighted_bce_with_logits(*head_batch(trainer, indices, weights, seed=4))
    loss = trainer.train_epoch(indices, weights, seed=4)  # one batch of 10 (batch size 16)
    assert calls == [pytest.approx(loss)]
    assert loss == pytest.approx(expected.item(), rel=1e-6)


def head_batch(
    trainer: DetectorTrainer, indices: np.ndarray, weights: np.ndarray, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The logits, labels and weights of the trainer's next (single) batch, computed here."""
    source = trainer.train_source
    (batch,) = source.batches(indices, 16, trainer.epochs_run, shuffle_seed=seed)
    weight_of = dict(zip(indices.tolist(), weights.tolist(), strict=True))
    with torch.no_grad():
        logits = trainer.detector.head(batch.inputs)
    batch_weights = torch.tensor([weight_of[int(i)] for i in batch.indices])
    return logits, batch.labels, batch_weights


def test_a_resume_state_of_an_earlier_version_is_refused(
    tiny_root: Path, tmp_path: Path, feature_dir: Path
) -> None:
    folder = tmp_path / "old"
    folder.mkdir()
    trainer = make_trainer(tiny_root, feature_dir)
    old = {"trainer": trainer.state_dict(), "fit": {"epoch": 1}, "best_model": {}, "run_key": ""}
    torch.save(old, folder / RESUME_NAME)
    with pytest.raises(UserError, match=r"earlier version.*--restart"):
        fit(trainer, FitConfig(niter=2), folder, lambda path: None)


def test_a_refused_resume_names_flags_as_flags_and_the_rest_in_words() -> None:
    from UniversalFakeDetect.engine.fit import _changed_settings

    before = '{"lr": 0.001, "world_size": 2, "definition": "a"}'
    now = '{"lr": 0.01, "world_size": 4, "definition": "a"}'
    text = _changed_settings(before, now)
    assert "--lr 0.001 then, 0.01 now" in text
    assert "the number of torchrun processes 2 then, 4 now" in text
    assert "--world_size" not in text and "definition" not in text
