"""The active-learning flags: unset is None (so presets can fill them), numbers and names of
acquisition functions, help texts saying which options read true labels."""

from __future__ import annotations

import argparse

import pytest

from active_learning.flags import add_active_learning_options


def parser() -> tuple[argparse.ArgumentParser, set[str]]:
    p = argparse.ArgumentParser(prog="train")
    return p, add_active_learning_options(p)


def test_unset_flags_are_none_and_dests_are_returned() -> None:
    p, dests = parser()
    args = p.parse_args([])
    assert all(getattr(args, dest) is None for dest in dests)
    assert args.use_active_learning is None
    assert {"acq_func", "query", "balance_acquisition", "al_patience_unit"} <= dests
    assert "use_active_learning" not in dests


def test_acq_func_by_number_and_name_and_switches() -> None:
    p, _ = parser()
    args = p.parse_args(["--acq_func", "9", "--no-balance_acquisition", "--query", "7"])
    assert args.acq_func == "loss_weighted_mean_std"
    assert args.balance_acquisition is False and args.query == 7
    assert p.parse_args(["--acq_func", "bald"]).acq_func == "bald"


def test_bad_acq_func_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    p, _ = parser()
    with pytest.raises(SystemExit) as exit_info:
        p.parse_args(["--acq_func", "entropy"])
    assert exit_info.value.code == 2
    assert "max_entropy" in capsys.readouterr().err


def test_help_says_which_options_need_true_labels(capsys: pytest.CaptureFixture[str]) -> None:
    p, _ = parser()
    with pytest.raises(SystemExit):
        p.parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "6-9 loss-weighted" in text and "TRUE label of every pool image" in text
    assert "--balance_acquisition" in text and "simulation only" in text
    assert "--label_free" in text
