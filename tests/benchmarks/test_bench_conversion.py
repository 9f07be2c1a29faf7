"""benchmarks/bench_conversion.py at tiny size (two 256 px PNGs, two rounds, two processes, an
archive of eight images in three parts): every figure it prints is there and follows from the
ones it measured."""

from __future__ import annotations

import re

import pytest

from tests.benchmarks.scripts import NUMBER, assert_quotient, load

IMAGES, ROUNDS, SIDE, WORKERS, PARTS, ARCHIVE_IMAGES = 2, 2, 256, 2, 3, 8


def check_timing(rate: str, each: str, rounds: str) -> None:
    """Images/s from ms per image, which is the best of the rounds."""
    times = rounds.split(", ")
    assert len(times) == ROUNDS
    assert each == min(times, key=float)
    assert_quotient(rate, 1000.0, each)


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

    timing = rf"({n}) images/s \(({n}) ms each; rounds ({n}(?:, {n})*) ms\)"
    decode = re.fullmatch(rf"decode only : +{timing}", lines[2])
    assert decode, lines[2]
    check_timing(*decode.groups())
    decode_rate = decode.group(1)
    filters = (r"bicubic \(default\)", "area", "bilinear", "lanczos")  # the default first
    for line, name in zip(lines[3:7], filters, strict=True):
        found = re.fullmatch(
            rf"conversion, {name} *: +{timing}; ratio to decode-only, one core: ({n})", line
        )
        assert found, line
        check_timing(*found.groups()[:3])
        assert_quotient(found.group(4), found.group(1), decode_rate)

    assert re.fullmatch(rf"  {WORKERS} process\(es\) started in {n} s", lines[7]), lines[7]
    pool = re.fullmatch(
        rf"{WORKERS} processes: +({n}) images/s = ({n}) per core; "
        rf"ratio per core against decode-only: ({n})",
        lines[8],
    )
    assert pool, lines[8]
    assert_quotient(pool.group(2), pool.group(1), float(WORKERS))
    assert_quotient(pool.group(3), pool.group(2), decode_rate)

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
