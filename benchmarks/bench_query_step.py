"""Time one active-learning query step over cached features, and the memory it allocates.

A step = T MC-dropout passes of a dropout -> linear head over every unlabelled row of a
float32 feature cache, as UniversalFakeDetect.features stores it (one mask per pass shared by
the pool: DESIGN section 4), BALD scores and a class-balanced top-k, streamed in chunks
(:mod:`active_learning.query_step`); a loss-weighted BALD step (two passes: the plain score's
range, then the scores) beside it. Pools of 10k, 100k, 481k and 2M rows of 1024-wide features
(CLIP RN50's width) live in a memory-mapped .npy file, as the feature cache does; every size
runs in fresh processes, on 1 rank and on 2 ranks sharing the chunks (gloo, merged with
``all_gather_object``). Allocated = the peak of what the step allocates (tracemalloc), not the
pages of the mapped cache, which the page cache holds and may drop; target under 2 GB at any
size, 1 s at 481k on 2 cores. ``--huge`` adds 12M rows (a 47 GB cache: more than this
machine's memory, so the step reads it from disk). At the smallest size the passes are also
timed with independent per-sample masks (the original's way) for the ratio.

The same run then times the query step of CLIP:RN50 (random weights) at 224 px on
``--clip_images`` images: from cached features against recomputing the whole network T times
per image, as the original did (target ratio at least 1,000x).

python benchmarks/bench_query_step.py [--sizes 10000 100000 481000 2000000] [--huge]
    [--clip_images 100] [--network CLIP:RN50] [--crop 224]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from active_learning.acquisition import bald, get_acquisition
from active_learning.mc_dropout import draw_masks, linear_head_probabilities
from active_learning.query_step import PoolScan, QueryRequest, stream_query

WIDTH, PASSES, DROPOUT, QUERY, LABELLED = 1024, 10, 0.5, 500, 2000
REPEATS = 3
LOSS_WEIGHTED = "loss_weighted_bald"
HUGE = 12_000_000


def make_cache(path: Path, rows: int, width: int, seed: int = 0) -> None:
    """A float32 .npy feature cache of random features, written in chunks."""
    rng = np.random.default_rng(seed)
    cache = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, width))
    for start in range(0, rows, 65536):
        stop = min(start + 65536, rows)
        cache[start:stop] = rng.standard_normal((stop - start, width), dtype=np.float32)
    cache.flush()


def query_step(
    features, labels, labelled, weight, seed: int, name: str = "bald", rank: int = 0,
    world: int = 1, gather=None,
) -> float:  # fmt: skip
    """One streamed step (its share of it, on ``rank`` of ``world``); returns its seconds."""
    start = time.perf_counter()
    masks = draw_masks(PASSES, features.shape[1], DROPOUT, seed)
    found = stream_query(
        QueryRequest(get_acquisition(name), QUERY, True, False, labels),
        PoolScan(labelled, 0, seed, rank=rank, world=world),
        lambda rows: linear_head_probabilities(features, weight, 0.0, masks, indices=rows),
        tie_seed=seed,
        select_rng=np.random.default_rng(seed),
        gather=gather,
    )
    assert found.indices.size == QUERY
    return time.perf_counter() - start


def per_sample_masks_step(features, weight, seed: int) -> float:
    """The T passes with an independent mask per sample and pass (the original's way)."""
    generator = torch.Generator().manual_seed(seed)
    w = torch.from_numpy(np.asarray(weight, dtype=np.float32))
    start = time.perf_counter()
    for start_row in range(0, len(features), 32768):
        x = torch.from_numpy(np.asarray(features[start_row : start_row + 32768])).float()
        for _ in range(PASSES):
            keep = torch.rand(x.shape, generator=generator) >= DROPOUT
            torch.sigmoid((x * keep) @ w / (1 - DROPOUT))
    return time.perf_counter() - start


def peak_rss_mb() -> float:
    """This process's peak resident memory: VmHWM (ru_maxrss would count the parent's memory
    at fork time, as Linux keeps it across exec)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def allocated_mb(step) -> float:
    """Peak memory one more ``step()`` allocates (numpy reports its buffers to tracemalloc),
    not counting the pages of the memory-mapped cache: what a pool larger than memory needs."""
    tracemalloc.start()
    try:
        step()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def pool_inputs(cache: Path, rows: int):
    """The first ``rows`` rows of the cache, their labels, 2,000 labelled rows, a head."""
    features = np.load(cache, mmap_mode="r")[:rows]
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, size=rows)
    labelled = rng.choice(rows, size=LABELLED, replace=False)
    weight = rng.standard_normal(WIDTH).astype(np.float32) / np.sqrt(WIDTH)
    return features, labels, labelled, weight


def child(cache: Path, rows: int, per_sample: bool, repeats: int) -> dict[str, float]:
    """Measure one pool size on one rank (in its own process)."""
    features, labels, labelled, weight = pool_inputs(cache, rows)
    rss_before = peak_rss_mb()
    runs = [query_step(features, labels, labelled, weight, seed) for seed in range(repeats)]
    result = {"total": float(np.median(runs)), "rss_before_mb": rss_before}
    result["loss_weighted"] = query_step(features, labels, labelled, weight, 0, LOSS_WEIGHTED)
    result["peak_rss_mb"] = peak_rss_mb()
    result["allocated_mb"] = allocated_mb(
        lambda: query_step(features, labels, labelled, weight, repeats)
    )
    result["cache_mb"] = features.nbytes / 2**20
    if per_sample:
        result["per_sample_masks"] = per_sample_masks_step(features, weight, 0)
    return result


BATCH_AWARE = ("max_entropy", "power_max_entropy", "softmax_max_entropy",
               "softrank_max_entropy", "badge")  # fmt: skip
BADGE_CANDIDATES = 10_000


def strategy_step(features, labels, labelled, weight, name: str, seed: int = 0) -> float:
    """Seconds of one unbalanced query of ``name`` (BADGE over BADGE_CANDIDATES candidates)."""
    start = time.perf_counter()
    masks = draw_masks(PASSES, features.shape[1], DROPOUT, seed)
    acquisition = get_acquisition(name)
    subsample = BADGE_CANDIDATES if acquisition.badge else 0

    def head_inputs(rows):
        inputs = np.asarray(features[rows], dtype=np.float32)
        return inputs, 1.0 / (1.0 + np.exp(-(inputs.astype(np.float64) @ weight)))

    found = stream_query(
        QueryRequest(acquisition, QUERY, False, False, labels),
        PoolScan(labelled, subsample, seed),
        lambda rows: linear_head_probabilities(features, weight, 0.0, masks, indices=rows),
        tie_seed=seed,
        select_rng=np.random.default_rng(seed),
        sample_seed=seed,
        head_inputs=head_inputs,
    )
    assert found.indices.size == QUERY
    return time.perf_counter() - start


def strategies_child(cache: Path, rows: int) -> dict[str, float]:
    """Median seconds of each batch-aware strategy on one pool size (in its own process)."""
    features, labels, labelled, weight = pool_inputs(cache, rows)
    strategy_step(features, labels, labelled, weight, "max_entropy")  # warm the page cache
    times = {}
    for name in BATCH_AWARE:
        runs = [strategy_step(features, labels, labelled, weight, name, s) for s in range(REPEATS)]
        times[name] = float(np.median(runs))
    return times


def ranked_child(cache: Path, rows: int, rank: int, world: int, port: int, repeats: int):
    """Measure one pool size as ``rank`` of ``world`` processes sharing the step (gloo)."""
    import torch.distributed as dist

    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    try:

        def gather(obj):
            out = [None] * world
            dist.all_gather_object(out, obj)
            return out

        features, labels, labelled, weight = pool_inputs(cache, rows)
        times = []
        for seed in range(repeats):
            dist.barrier()
            times.append(query_step(features, labels, labelled, weight, seed, "bald", rank,
                                    world, gather))  # fmt: skip
        allocated = allocated_mb(
            lambda: query_step(
                features, labels, labelled, weight, repeats, "bald", rank, world, gather
            )
        )
        return {"total": float(np.median(times)), "allocated_mb": allocated}
    finally:
        dist.destroy_process_group()


def clip_cached_vs_recomputed(images: int, arch: str = "CLIP:RN50", crop: int = 224) -> None:
    """Query step of a frozen ``arch`` detector: cached features vs T full forward passes."""
    from active_learning.mc_dropout import mc_dropout
    from UniversalFakeDetect.models.detector import Detector
    from UniversalFakeDetect.models.registry import build_backbone

    torch.manual_seed(0)
    detector = Detector(build_backbone(arch, weights="none"), fix_backbone=True).eval()
    batch = 25
    pixels = torch.rand(images, 3, crop, crop)
    with torch.no_grad(), mc_dropout(detector):
        start = time.perf_counter()
        recomputed = torch.stack(
            [
                torch.cat(
                    [
                        torch.sigmoid(detector(pixels[i : i + batch]))
                        for i in range(0, images, batch)
                    ]
                )
                for _ in range(PASSES)
            ]
        )
        recompute_s = time.perf_counter() - start
    with torch.no_grad():
        start = time.perf_counter()
        features = torch.cat(
            [detector.features(pixels[i : i + batch]) for i in range(0, images, batch)]
        )
        cache_s = time.perf_counter() - start
    cached = features.numpy().astype(np.float32)
    weight = detector.fc.weight.detach().numpy()[0]
    bias = float(detector.fc.bias.detach()[0])
    timings = []
    for repeat in range(REPEATS):
        start = time.perf_counter()
        masks = draw_masks(PASSES, detector.width, detector.dropout.p, seed=repeat)
        probs = linear_head_probabilities(cached, weight, bias, masks)
        bald(probs)
        timings.append(time.perf_counter() - start)
    cached_s = float(np.median(timings))
    assert recomputed.shape == probs.shape
    print(
        f"\n{arch} at {crop} px, {images} images, T={PASSES}: recomputing the network T times "
        f"{recompute_s:.1f} s; from the feature cache {cached_s * 1000:.2f} ms "
        f"= {recompute_s / cached_s:,.0f}x faster (building the cache once: {cache_s:.1f} s, "
        f"{PASSES}x fewer backbone passes even counting it)"
    )


def print_strategies(cache: Path, sizes: list[int]) -> None:
    """The batch-aware strategies' query times per pool size, as ratios to max entropy."""
    print(
        f"\nbatch-aware queries of {QUERY} (unbalanced; BADGE over {BADGE_CANDIDATES:,} random "
        "candidates), s (ratio to max_entropy):"
    )
    print(f"{'pool':>9} " + " ".join(f"{name:>22}" for name in BATCH_AWARE))
    for rows in sizes:
        times = last_json([sys.executable, __file__, "--strategies_child", str(cache), str(rows)])
        base = times["max_entropy"]
        cells = [f"{times[n]:.3f} ({times[n] / base:.2f}x)" for n in BATCH_AWARE]
        print(f"{rows:>9} " + " ".join(f"{c:>22}" for c in cells))


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def last_json(command: list[str]) -> dict:
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def measure(cache: Path, rows: int, per_sample: bool, world: int) -> dict[str, float]:
    """One pool size: a 1-rank process, then ``world`` processes sharing the step."""
    repeats = 1 if rows > 4_000_000 else REPEATS
    base = [sys.executable, __file__, "--repeats", str(repeats)]
    result = last_json([*base, "--child", str(cache), str(rows), *(["--per_sample"] * per_sample)])
    port = str(free_port())
    ranks = [
        subprocess.Popen(
            [*base, "--ranked_child", str(cache), str(rows), str(rank), str(world), port],
            stdout=subprocess.PIPE,
            text=True,
        )
        for rank in range(world)
    ]
    shared = []
    for process in ranks:
        out, _ = process.communicate()
        if process.returncode:
            raise RuntimeError(f"a ranked child failed ({process.returncode})")
        shared.append(json.loads(out.strip().splitlines()[-1]))
    result["ranks_total"] = max(r["total"] for r in shared)
    result["ranks_allocated_mb"] = max(r["allocated_mb"] for r in shared)
    return result


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[10_000, 100_000, 481_000, 2_000_000]
    )
    parser.add_argument("--huge", action="store_true", help=f"add {HUGE:,} rows (47 GB on disk)")
    parser.add_argument("--world", type=int, default=2, help="processes sharing a step (2)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)  # CACHE ROWS
    parser.add_argument("--ranked_child", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--strategies_child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument(
        "--strategy_sizes", type=int, nargs="+", default=[10_000, 100_000, 481_000],
        help="pool sizes of the batch-aware strategies' timing (none: --strategy_sizes 0)",
    )  # fmt: skip
    parser.add_argument("--repeats", type=int, default=REPEATS, help=argparse.SUPPRESS)
    parser.add_argument("--per_sample", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--clip_images", type=int, default=100, help="images for the CLIP:RN50 part (0: skip)"
    )
    parser.add_argument(
        "--network", default="CLIP:RN50", help="the network of that part (default CLIP:RN50)"
    )
    parser.add_argument("--crop", type=int, default=224, help="its crop size (default 224)")
    args = parser.parse_args(argv)
    if args.child:
        cache, rows = Path(args.child[0]), int(args.child[1])
        print(json.dumps(child(cache, rows, args.per_sample, args.repeats)))
        return
    if args.strategies_child:
        cache, rows = args.strategies_child
        print(json.dumps(strategies_child(Path(cache), int(rows))))
        return
    if args.ranked_child:
        cache, rows, rank, world, port = args.ranked_child
        measured = ranked_child(
            Path(cache), int(rows), int(rank), int(world), int(port), args.repeats
        )
        print(json.dumps(measured))
        return
    sizes = sorted(set(args.sizes) | ({HUGE} if args.huge else set()))
    print(
        f"one query step: T={PASSES} shared-mask MC-dropout passes of a dropout({DROPOUT}) -> "
        f"linear head over a float32 [N, {WIDTH}] memory-mapped cache ({LABELLED} rows "
        f"labelled), BALD, balanced top-{QUERY}, streamed in chunks; median of {REPEATS} "
        f"(1 above 4M rows); torch threads {torch.get_num_threads()}"
    )
    header = (
        f"{'pool':>9} {'cache MB':>9} {'1 rank s':>9} {'allocated MB':>13} "
        f"{'peak RSS MB':>12} {'loss-wtd s':>11} {f'{args.world} ranks s':>10} "
        f"{'allocated MB':>13}"
    )
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "features.npy"
        start = time.perf_counter()
        make_cache(cache, max(sizes), WIDTH)
        print(f"(cache of {max(sizes)} rows written in {time.perf_counter() - start:.1f} s)")
        print(header)
        for i, rows in enumerate(sizes):
            r = results[rows] = measure(cache, rows, i == 0, args.world)
            print(
                f"{rows:>9} {r['cache_mb']:>9.0f} {r['total']:>9.3f} {r['allocated_mb']:>13.0f} "
                f"{r['peak_rss_mb']:>12.0f} {r['loss_weighted']:>11.3f} "
                f"{r['ranks_total']:>10.3f} {r['ranks_allocated_mb']:>13.0f}"
            )
        strategy_sizes = [n for n in args.strategy_sizes if 0 < n <= max(sizes)]
        if strategy_sizes:
            print_strategies(cache, strategy_sizes)
    first = results[sizes[0]]
    print(
        f"\nper-sample masks at {sizes[0]}: {first['per_sample_masks']:.3f} s for the passes "
        f"= {first['per_sample_masks'] / first['total']:.0f}x the whole shared-mask step"
    )
    largest = results[sizes[-1]]
    print(
        f"{sizes[-1]} rows: {largest['total']:.3f} s on 1 rank, {largest['ranks_total']:.3f} s "
        f"on {args.world} (ratio {largest['total'] / largest['ranks_total']:.2f}); allocated "
        f"{largest['allocated_mb'] / 1024:.2f} GB, {largest['ranks_allocated_mb'] / 1024:.2f} "
        f"GB a rank (target under 2 GB; the mapped cache not counted); "
        f"{largest['total'] / largest['cache_mb'] * 1024:.2f} s per GB of cache"
    )
    if args.clip_images:
        clip_cached_vs_recomputed(args.clip_images, args.network, args.crop)


if __name__ == "__main__":
    main()
