"""Phase times: sums per phase, blocks timed even when they raise, and the printed split."""

from __future__ import annotations

import time

import pytest

from rfd_common.phase_times import PhaseTimes, format_phase_times


def test_phase_times_add_up_and_print_on_one_line() -> None:
    times = PhaseTimes()
    times.add("queries", 1.0)
    with times("training"):
        time.sleep(0.01)
    times.add("training", 2.0)
    times.add("custom", 0.5)
    times.add("saving", 0.0)
    assert times.as_dict()["training"] >= 2.01
    line = format_phase_times({"final_test": 3.0, "training": 4.0, "queries": 2.0, "custom": 1.0})
    assert line == (
        "time per phase: training 4.0 s (40%), queries 2.0 s (20%), final test 3.0 s (30%), "
        "custom 1.0 s (10%) of 10.0 s"
    )
    total = format_phase_times({"training": 6.0, "saving": 0.04}, total=8.0)
    assert total == "time per phase: training 6.0 s (75%), other 2.0 s (25%) of 8.0 s"


def test_a_block_that_raises_is_timed_and_merges_add_up() -> None:
    times = PhaseTimes()
    with pytest.raises(RuntimeError), times("final_test"):
        time.sleep(0.01)
        raise RuntimeError("stop")
    assert times.as_dict()["final_test"] >= 0.01
    times.merge({"final_test": 1.0, "data": 2.0})
    assert times.as_dict()["final_test"] >= 1.01 and times.as_dict()["data"] == 2.0
