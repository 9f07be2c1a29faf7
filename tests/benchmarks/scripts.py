"""Load a script of benchmarks/ as a module, and check the figures it printed against each other.

A printed figure stands for every value that rounds to it: ``"0.18"`` for [0.175, 0.185]. A
ratio printed from two measurements is consistent with the two printed measurements when its
range meets the range of their quotient; nothing here compares a figure with a speed target.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
# A printed number: digits with optional thousands commas and decimals.
NUMBER = r"\d[\d,]*(?:\.\d+)?"


def load(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as a module (not run); sys.path is left as it was."""
    path = BENCHMARKS / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    saved = list(sys.path)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = saved
    return module


def bounds(printed: str | float) -> tuple[float, float]:
    """The values that print as ``printed`` (half a unit of its last digit either side); a
    float is exact."""
    if isinstance(printed, float | int):
        return float(printed), float(printed)
    text = printed.strip().replace(",", "").removesuffix("%")
    half = 0.5 * 10.0 ** -len(text.partition(".")[2])
    value = float(text)
    return value - half, value + half


def assert_quotient(
    printed: str, numerator: str | float, denominator: str | float, scale: float = 1.0
) -> None:
    """``printed`` can be ``scale * numerator / denominator`` for the printed operands."""
    low_n, high_n = bounds(numerator)
    low_d, high_d = bounds(denominator)
    assert low_d > 0, f"denominator {denominator} may be 0"
    low = scale * max(low_n, 0.0) / high_d
    high = scale * high_n / low_d
    low_p, high_p = bounds(printed)
    slack = 1e-9 * max(1.0, high)
    assert low_p <= high + slack and low - slack <= high_p, (
        f"{printed} is not {scale} * {numerator} / {denominator} (between {low:.6g} and {high:.6g})"
    )
