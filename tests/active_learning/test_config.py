"""Flags, presets (explicit flags win), validation, help texts."""

from __future__ import annotations

import argparse

import pytest

from active_learning.config import (
    PRESETS,
    ALConfig,
    ConfigError,
    add_active_learning_options,
    config_from_namespace,
    explicit_dests,
    parse_with_presets,
)


def parser(detector_flags: bool = False) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="train")
    p.add_argument("--seed", type=int, default=0)
    if detector_flags:  # as the detector's entry point: own defaults and an own --preset
        p.add_argument("--niter", type=int, default=8)
        p.add_argument("--lr", type=float, default=1e-3)
        p.add_argument("--batch_size", type=int, default=64)
        p.add_argument("--arch", default="Imagenet:resnet18")
        p.add_argument("--preset", choices=["demo"])
    add_active_learning_options(p)
    return p


def test_defaults_without_flags() -> None:
    args, config = parse_with_presets(parser(), [])
    assert config == ALConfig()
    assert args.acq_func is None and args.balance_acquisition is None


def test_acq_func_by_number_and_name() -> None:
    assert parse_with_presets(parser(), ["--acq_func", "9"])[1].acq_func == (
        "loss_weighted_mean_std"
    )
    assert parse_with_presets(parser(), ["--acq_func", "bald"])[1].acq_func == "bald"
    assert parse_with_presets(parser(), ["--acq_func", "0"])[1].strategies == (
        "uniform", "max_entropy", "bald", "var_ratios", "mean_std",
    )  # fmt: skip


def test_bad_acq_func_is_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parser().parse_args(["--acq_func", "entropy"])
    assert exit_info.value.code == 2
    assert "max_entropy" in capsys.readouterr().err


def test_bw_lms_t_preset() -> None:
    args, config = parse_with_presets(parser(detector_flags=True), ["--preset", "bw_lms_t"])
    expected = PRESETS["bw_lms_t"]["al"]
    assert {k: getattr(config, k) for k in expected} == expected
    assert config.num_samples_per_class == 1000 and config.query == 500
    assert config.niter == 5 and config.al_niter_warmup == 60 and config.earlystop_epoch == 10
    assert config.weighted_loss_decay == 0.75 and config.al_earlystop_metric == "ap"
    assert config.balance_acquisition and config.use_weighted_loss
    assert config.simulation_only  # loss-weighted + balanced on true labels
    # the detector's own flags take the paper's values, even though they have defaults
    assert (args.lr, args.batch_size, args.arch, args.niter) == (1e-4, 256, "CLIP:RN50", 5)


def test_table1_preset() -> None:
    _, config = parse_with_presets(parser(), ["--preset", "table1"])
    assert (config.num_samples_per_class * 2, config.query, config.al_iter) == (10000, 2500, 20)
    assert (config.al_niter_warmup, config.niter, config.dropout_iter) == (30, 30, 10)
    assert config.weighted_loss_decay == 0.99 and not config.simulation_only


def test_explicit_flags_beat_the_preset() -> None:
    argv = ["--preset", "bw_lms_t", "--query", "50", "--no-balance_acquisition", "--niter", "7",
            "--lr", "0.01", "--acq_func", "3"]  # fmt: skip
    args, config = parse_with_presets(parser(detector_flags=True), argv)
    assert config.query == 50 and config.niter == 7 and config.acq_func == "bald"
    assert config.balance_acquisition is False
    assert config.use_weighted_loss is True  # not given: from the preset
    assert args.lr == 0.01 and args.batch_size == 256
    # a flag given with its default value is still explicit
    args, config = parse_with_presets(
        parser(detector_flags=True), ["--preset", "bw_lms_t", "--niter", "8"]
    )
    assert config.niter == 8


def test_explicit_dests_and_restored_defaults() -> None:
    p = parser(detector_flags=True)
    assert explicit_dests(p, ["--niter", "8", "--label_free"]) == {"niter", "label_free"}
    assert p.parse_args([]).niter == 8  # defaults put back


def test_entry_point_preset_is_shared_and_ignored_here() -> None:
    p = parser(detector_flags=True)
    assert p.parse_args(["--preset", "bw_lms_t"]).preset == "bw_lms_t"
    args, config = parse_with_presets(p, ["--preset", "demo"])
    assert config.preset is None and args.preset == "demo" and args.niter == 8
    assert config.niter == 8  # the shared --niter's value


def test_label_free_is_not_simulation_only() -> None:
    config = ALConfig(acq_func="loss_weighted_bald", balance_acquisition=True, label_free=True)
    assert not config.simulation_only and config.true_label_uses == []
    config = ALConfig(acq_func="bald", balance_acquisition=True)
    assert config.true_label_uses == ["--balance_acquisition splits the query by true class"]


@pytest.mark.parametrize(
    ("changes", "flag"),
    [
        ({"query": 0}, "--query"),
        ({"dropout_iter": 0}, "--dropout_iter"),
        ({"weighted_loss_decay": 1.5}, "--weighted_loss_decay"),
        ({"al_earlystop_metric": "auc"}, "--al_earlystop_metric"),
        ({"subsample_size": -1}, "--subsample_size"),
        ({"num_samples_per_class": 0}, "--num_samples_per_class"),
    ],
)
def test_validation_names_the_flag(changes: dict, flag: str) -> None:
    with pytest.raises(ConfigError, match=flag):
        ALConfig(**changes).validate()


def test_bad_acq_func_in_config() -> None:
    with pytest.raises(ConfigError, match="--acq_func"):
        ALConfig(acq_func="nope")


def test_config_round_trips_through_a_dict() -> None:
    config = ALConfig(acq_func="7", query=3, label_free=True)
    assert ALConfig.from_dict({**config.to_dict(), "unknown": 1}) == config


def test_help_says_which_options_need_true_labels(capsys) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "6-9 loss-weighted" in text and "TRUE label of every pool image" in text
    assert "--balance_acquisition" in text and "simulation only" in text
    assert "--label_free" in text and "--preset {table1,bw_lms_t}" in text


def test_namespace_without_the_parser() -> None:
    namespace = argparse.Namespace(preset="table1", query=10, niter=None, seed=3)
    config = config_from_namespace(namespace)
    assert config.query == 10 and config.niter == 30 and config.seed == 3
