"""The training command line into settings: one preset table, explicit flags win, the demo
implied by the embedded dataset is exactly --preset demo, one message per bad value."""

from __future__ import annotations

import pytest

from active_learning.config import ALConfig
from rfd_common.errors import UserError
from UniversalFakeDetect.presets import PRESETS
from UniversalFakeDetect.train_settings import parse_train_args


@pytest.fixture(autouse=True)
def no_data_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RFD_DATA_ROOT", raising=False)


def settings(*argv: str):
    return parse_train_args(list(argv), None)


def test_named_demo_preset_is_the_implicit_demo() -> None:
    """With and without active learning, the resolved settings are the same."""
    for base in ([], ["--use_active_learning"]):
        implicit = settings(*base)
        named = settings(*base, "--preset", "demo")
        assert implicit.is_demo and named.is_demo
        assert named.to_dict() == implicit.to_dict()
        assert named.run.preset == implicit.run.preset == "demo"
    resolved = settings("--use_active_learning")
    al = resolved.active_learning
    demo = PRESETS["demo"].active_learning
    assert al is not None

    def value(name: str) -> object:  # the active-learning part may also set a detector field
        return getattr(al, name) if hasattr(al, name) else getattr(resolved.optim, name)

    assert {k: value(k) for k in demo} == {
        k: ALConfig(acq_func=v).acq_func if k == "acq_func" else v for k, v in demo.items()
    }
    assert resolved.optim.lr == 5e-4 and settings().optim.lr == 1e-3  # the rounds' own LR


def test_general_defaults_outside_the_demo(tmp_path) -> None:
    s = settings("--data_root", str(tmp_path))
    assert not s.is_demo and s.run.preset is None and s.applied == ()
    assert (s.model.arch, s.model.weights, s.optim.niter, s.optim.lr) == (
        "CLIP:RN50", "pretrained", 100, 1e-4,
    )  # fmt: skip
    assert (s.augment.blur_prob, s.augment.jpg_prob) == (0.5, 0.5)
    assert s.optim.earlystop_metric == "acc"  # the original's
    assert s.run.name == "normal" and s.active_learning is None


def test_bw_lms_t_preset_sets_detector_and_active_learning(tmp_path) -> None:
    s = settings("--data_root", str(tmp_path), "--preset", "bw_lms_t")
    al = s.active_learning
    assert al is not None  # the preset implies active learning
    assert (al.num_samples_per_class, al.query, al.niter, al.earlystop_epoch) == (1000, 500, 5, 10)
    assert al.balance_acquisition and al.use_weighted_loss and al.simulation_only
    assert (s.model.arch, s.model.fix_backbone, s.optim.lr, s.optim.batch_size) == (
        "CLIP:RN50", True, 1e-4, 256,
    )  # fmt: skip
    assert s.optim.niter == 5  # the round's epochs


def test_explicit_flags_beat_the_preset(tmp_path) -> None:
    s = settings(
        "--data_root", str(tmp_path), "--preset", "bw_lms_t", "--query", "50",
        "--no-balance_acquisition", "--niter", "7", "--lr", "0.01", "--acq_func", "3",
    )  # fmt: skip
    al = s.active_learning
    assert al.query == 50 and al.niter == 7 and al.acq_func == "bald"
    assert al.balance_acquisition is False and al.use_weighted_loss is True
    assert s.optim.lr == 0.01 and s.optim.batch_size == 256
    assert "--query 50" not in " ".join(s.applied)
    assert settings("--data_root", str(tmp_path), "--niter", "100").optim.niter == 100


def test_active_learning_defaults_for_the_round(tmp_path) -> None:
    s = settings("--data_root", str(tmp_path), "--use_active_learning")
    assert s.active_learning == ALConfig(use_active_learning=True).validate()
    assert (s.optim.niter, s.optim.earlystop_epoch) == (ALConfig.niter, ALConfig.earlystop_epoch)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--acq_func", "9", "--query", "5"], "--acq_func, --query: active-learning options"),
        (["--blur_sig", "3,1"], "--blur_sig (3.0, 1.0): must be one sigma or a range"),
        (["--jpg_qual", "30,200"], "--jpg_qual (30, 200): must be one quality"),
        (["--beta1", "1.5"], "--beta1 1.5: must be in [0, 1)"),
        (["--cropSize", "0"], "--cropSize 0: must be at least 1"),
        (["--jpg_method", "gif"], "--jpg_method gif: unknown JPEG method"),
        (["--earlystop_metric", "ap", "--holdout_fraction", "1"], "--holdout_fraction 1.0"),
        (["--use_active_learning", "--query", "0"], "--query 0: must be at least 1"),
    ],
)
def test_one_message_per_bad_value(argv: list[str], needle: str) -> None:
    with pytest.raises(UserError) as info:
        settings(*argv)
    assert needle in str(info.value)


def test_resume_key_leaves_out_what_may_change(tmp_path) -> None:
    base = settings("--data_root", str(tmp_path))
    more_epochs = settings("--data_root", str(tmp_path), "--niter", "300", "--name", "x")
    other_lr = settings("--data_root", str(tmp_path), "--lr", "0.5")
    assert base.resume_key() == more_epochs.resume_key()
    assert base.resume_key() != other_lr.resume_key()
    assert "lr" in base.resume_key() and "niter" not in base.resume_key()
