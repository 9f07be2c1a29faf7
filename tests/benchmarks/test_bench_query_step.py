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
            *("--strategy_sizes", str(SIZES[0])),
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
    names = ("rows", "cache_mb", "total", "allocated", "peak", "loss", "ranks", "ranks_allocated")
    for line, rows in zip(body, SIZES, strict=True):
        cells = line.split()
        assert len(cells) == 8 and all(re.fullmatch(n, cell) for cell in cells), line
        assert cells[0] == str(rows)
        # float32 features, WIDTH wide: the MB of the rows measured
        assert cells[1] == f"{rows * bench.WIDTH * 4 / 2**20:.0f}"
        table[rows] = dict(zip(names, cells, strict=True))
    rest = lines[3 + len(SIZES) :]
    assert rest[0] == ""
    assert rest[1].startswith(f"batch-aware queries of {bench.QUERY} (unbalanced; BADGE over")
    assert rest[2].split() == ["pool", *bench.BATCH_AWARE]
    cells = re.findall(rf"({n}) \(({n})x\)", rest[3])
    assert rest[3].split()[0] == str(SIZES[0]) and len(cells) == len(bench.BATCH_AWARE), rest[3]
    for seconds, ratio in cells:
        assert_quotient(ratio, seconds, cells[0][0])  # each over max entropy's
    assert cells[0][1] == "1.00"
    rest = rest[4:]
    assert rest[0] == ""
    first, last = table[SIZES[0]], table[SIZES[-1]]
    per_sample = re.fullmatch(
        rf"per-sample masks at {SIZES[0]}: ({n}) s for the passes = ({n})x the whole "
        "shared-mask step",
        rest[1],
    )
    assert per_sample, rest[1]
    assert_quotient(per_sample.group(2), per_sample.group(1), first["total"])
    summary = re.fullmatch(
        rf"{SIZES[-1]} rows: ({n}) s on 1 rank, ({n}) s on 2 \(ratio ({n})\); allocated ({n}) "
        rf"GB, ({n}) GB a rank \(target under 2 GB; the mapped cache not counted\); ({n}) s per "
        "GB of cache",
        rest[2],
    )
    assert summary, rest[2]
    one, two, ratio, allocated, ranks_allocated, per_gb = summary.groups()
    assert (one, two) == (last["total"], last["ranks"])
    assert_quotient(ratio, one, two)
    assert_quotient(allocated, last["allocated"], 1024.0)
    assert_quotient(ranks_allocated, last["ranks_allocated"], 1024.0)
    assert_quotient(per_gb, one, last["cache_mb"], scale=1024.0)
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
