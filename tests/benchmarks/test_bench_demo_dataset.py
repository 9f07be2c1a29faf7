"""benchmarks/bench_demo_dataset.py at tiny size (16 images per split at 16 and 32 px): one line
per size, images/s from the images and seconds it printed, and the ratio of the two rates."""

from __future__ import annotations

import re

import pytest

from tests.benchmarks.scripts import NUMBER, assert_quotient, load

SIZES, TRAIN, VAL = (16, 32), 16, 16


def test_tiny_run_prints_consistent_figures(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load("bench_demo_dataset")
    sizes = [str(size) for size in SIZES]
    bench.main(["--sizes", *sizes, "--train_images", str(TRAIN), "--val_images", str(VAL)])
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"torch threads: \d+", lines[0]), lines[0]
    rates = {}
    for line, size in zip(lines[1:3], SIZES, strict=True):
        found = re.fullmatch(
            rf" *{size} px: {TRAIN + VAL} images in +({NUMBER}) s = +({NUMBER}) images/s", line
        )
        assert found, line
        assert_quotient(found.group(2), float(TRAIN + VAL), found.group(1))
        rates[size] = found.group(2)
    ratio = re.fullmatch(rf"{SIZES[0]} px is ({NUMBER})x faster than {SIZES[1]} px", lines[3])
    assert ratio, lines[3]
    assert_quotient(ratio.group(1), rates[SIZES[0]], rates[SIZES[1]])
    assert len(lines) == 4
