"""ALConfig: validation names the flag, labels read in simulation, round trip."""

from __future__ import annotations

import pytest

from active_learning.config import ALConfig, ConfigError
from rfd_common.errors import UserError


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
        ({"al_patience_unit": "week"}, "--al_patience_unit"),
    ],
)
def test_validation_names_the_flag(changes: dict, flag: str) -> None:
    with pytest.raises(ConfigError, match=flag):
        ALConfig(**changes).validate()


def test_config_errors_are_user_errors() -> None:
    with pytest.raises(UserError, match="--acq_func"):
        ALConfig(acq_func="nope")


def test_acq_func_by_number_and_name() -> None:
    assert ALConfig(acq_func="9").acq_func == "loss_weighted_mean_std"
    assert ALConfig(acq_func="0").strategies == (
        "uniform", "max_entropy", "bald", "var_ratios", "mean_std",
    )  # fmt: skip


def test_config_round_trips_through_a_dict() -> None:
    config = ALConfig(acq_func="7", query=3, label_free=True)
    assert ALConfig.from_dict({**config.to_dict(), "unknown": 1}) == config
