"""benchmarks/bench_conversion.py at tiny size (two 256 px PNGs, two rounds, two processes, an
archive of eight images in three parts): every figure it prints is there and follows from the
ones it measured."""

from __future__ import annotations

import re

import pytest

from tests.benchmarks.scripts import NUMBER, assert_quotient, load

IMAGES, ROUNDS, SIDE, WORKERS, PARTS, ARCHIVE_IMAGES = 2, 2, 256, 2, 3, 8


def test_tiny_run_prints_consistent_figures(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load("bench_conversion")
    bench.main(
        [
            *("--images", str(IMAGES), "--rounds", str(ROUNDS), "--side", str(SIDE)),
            *("--workers", str(WORKERS), "--parts", str(PARTS)),
            *("--archive_images", str(ARCHIVE_IMAGES)),
        ]
    )
    lines = capsys.readouterr().out.splitlines()
    n = NUMBER
    assert re.fullmatch(rf"cores: {WORKERS} of \d+; Pillow \S+", lines[0]), lines[0]
    assert re.fullmatch(rf"{IMAGES} PNG sources, {SIDE}x{SIDE}, \d+ KB each", lines[1]), lines[1]

    rates = {}
    for line, name in zip(lines[2:4], ("decode only :", "conversion  :"), strict=True):
        found = re.fullmatch(
            rf"{name} +({n}) images/s \(({n}) ms each; rounds ({n}(?:, {n})*) ms\)", line
        )
        assert found, line
        rate, each, rounds = found.group(1), found.group(2), found.group(3).split(", ")
        assert len(rounds) == ROUNDS
        assert each == min(rounds, key=float)  # the best round is the one reported
        assert_quotient(rate, 1000.0, each)  # images/s from ms per image
        rates[name] = rate
    one_core = r"ratio \(conversion / decode-only throughput, one core\)"
    ratio = re.fullmatch(rf"{one_core}: ({n})", lines[4])
    assert ratio, lines[4]
    assert_quotient(ratio.group(1), rates["conversion  :"], rates["decode only :"])
    for line, gap in zip(lines[5:7], ("2.0", "1.1"), strict=True):
        assert re.match(rf"  what if reducing_gap={gap}: ratio {n} \(not used: ", line), line

    assert re.fullmatch(rf"  {WORKERS} process\(es\) started in {n} s", lines[7]), lines[7]
    pool = re.fullmatch(
        rf"{WORKERS} processes: +({n}) images/s = ({n}) per core; "
        rf"ratio per core against decode-only: ({n})",
        lines[8],
    )
    assert pool, lines[8]
    assert_quotient(pool.group(2), pool.group(1), float(WORKERS))
    assert_quotient(pool.group(3), pool.group(2), rates["decode only :"])

    archive = re.fullmatch(rf"archive: ({n}) MB in {PARTS} parts", lines[9])
    assert archive, lines[9]
    for line, prefetch in zip(lines[10:], (0, 1), strict=True):
        found = re.fullmatch(
            rf"prefetch {prefetch}: {ARCHIVE_IMAGES} images in {n} s; peak scratch ({n}) MB "
            rf"\(meter\), {n} MB \(polled\) = ({n})% of the ({n}) MB archive; {n} MB of JPEGs",
            line,
        )
        assert found, line
        meter, share, size = found.groups()
        assert size == archive.group(1)
        assert_quotient(share, meter, size, scale=100.0)
    assert len(lines) == 12
