"""The checker the benchmark tests rely on: a printed ratio agrees with printed operands exactly
when some values that round to them give it."""

from __future__ import annotations

import pytest

from tests.benchmarks.scripts import assert_quotient, bounds


def test_bounds_are_half_a_unit_of_the_last_digit() -> None:
    assert bounds("0.18") == pytest.approx((0.175, 0.185))
    assert bounds("1,163") == pytest.approx((1162.5, 1163.5))
    assert bounds("33.3%") == pytest.approx((33.25, 33.35))
    assert bounds(2.0) == (2.0, 2.0)


def test_a_ratio_from_the_printed_figures_agrees_and_another_does_not() -> None:
    assert_quotient("0.18", "184.7", "1012.2")  # 0.1825
    assert_quotient("33.3", "0.34", "1.02", scale=100.0)  # rounding of both operands allowed
    with pytest.raises(AssertionError):
        assert_quotient("0.20", "184.7", "1012.2")
    with pytest.raises(AssertionError):
        assert_quotient("5.48", "1012.2", "184.7", scale=1000.0)  # a wrong unit
