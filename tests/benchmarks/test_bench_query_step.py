"""benchmarks/bench_query_step.py at tiny size (a pool of 3,000 rows, measured in its own
process; the cached-versus-recomputed part with one image through ResNet-18 at 32 px): a table
row per pool size, and every ratio and summary follows from the printed figures."""

from __future__ import annotations

import re

import pytest

from tests.benchmarks.scripts import NUMBER, assert_quotient, load

SIZES, NETWORK, CROP, IMAGES = (3000,), "Imagenet:resnet18", 32, 1


def test_tiny_run_prints_consistent_figures(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load("bench_query_step")
    bench.main(
        [
            *("--sizes", *map(str, SIZES), "--clip_images", str(IMAGES)),
            *("--network", NETWORK, "--crop", str(CROP)),
        ]
    )
    lines = capsys.readouterr().out.splitlines()
    n = NUMBER
    assert lines[0].startswith(f"one query step: T={bench.PASSES} shared-mask MC-dropout passes")
    assert re.fullmatch(rf"\(cache of {max(SIZES)} rows written in {n} s\)", lines[1]), lines[1]
    assert lines[2].split()[:3] == ["pool", "cache", "MB"]
    table = {}
    body = lines[3 : 3 + len(SIZES)]
    for line, rows in zip(body, SIZES, strict=True):
        cells = line.split()
        assert len(cells) == 9 and all(re.fullmatch(n, cell) for cell in cells), line
        assert cells[0] == str(rows)
        # float32 features, WIDTH wide: the MB of the rows measured
        assert cells[1] == f"{rows * bench.WIDTH * 4 / 2**20:.0f}"
        assert float(cells[7]) >= float(cells[6])  # a peak is at least what came before it
        table[rows] = dict(zip(("mc", "score", "select", "total"), cells[2:6], strict=True))
        table[rows]["peak_mb"] = cells[7]
        table[rows]["allocated_mb"] = cells[8]
    rest = lines[3 + len(SIZES) :]
    assert rest[0] == ""
    first, last = table[SIZES[0]], table[SIZES[-1]]
    per_sample = re.fullmatch(
        rf"per-sample masks at {SIZES[0]}: ({n}) s for the passes = ({n})x the shared-mask passes",
        rest[1],
    )
    assert per_sample, rest[1]
    assert_quotient(per_sample.group(2), per_sample.group(1), first["mc"])
    summary = re.fullmatch(
        rf"{SIZES[-1]} rows: ({n}) s \(target 1 s\), peak RSS ({n}) GB \(target 2 GB\), "
        rf"allocated ({n}) GB \(the mapped cache not counted\)",
        rest[2],
    )
    assert summary, rest[2]
    assert summary.group(1) == last["total"]
    assert_quotient(summary.group(2), last["peak_mb"], 1024.0)
    assert_quotient(summary.group(3), last["allocated_mb"], 1024.0)
    assert rest[3] == ""
    cached = re.fullmatch(
        rf"{NETWORK} at {CROP} px, {IMAGES} images, T={bench.PASSES}: recomputing the network T "
        rf"times ({n}) s; from the feature cache ({n}) ms = ({n})x faster \(building the cache "
        rf"once: {n} s, {bench.PASSES}x fewer backbone passes even counting it\)",
        rest[4],
    )
    assert cached, rest[4]
    recompute, from_cache, ratio = cached.groups()
    assert_quotient(ratio, recompute, from_cache, scale=1000.0)  # s over ms
    assert len(rest) == 5
