"""Time one active-learning query step over cached features, and its peak memory.

A step = T MC-dropout passes of a dropout -> linear head over every unlabelled row of a
float32 feature cache, as UniversalFakeDetect.features stores it (one mask per pass shared by
the pool: DESIGN section 4), BALD scores, and a class-balanced top-k selection. Pools of 10k,
100k and 481k rows of 1024-wide features (CLIP RN50's width) live in a memory-mapped .npy
file, as the feature cache does; every size runs in a fresh process so its peak resident
memory (which counts the mapped features: 1.9 GB at 481k) is its own. The target: at most
1 s and about 2 GB at 481k on 2 cores. At the smallest size the step is also
timed with independent per-sample masks (the original's way) for the ratio.

The same run then times the query step of CLIP:RN50 (random weights) at 224 px on
``--clip_images`` images: from cached features against recomputing the whole network T times
per image, as the original did (target ratio at least 1,000x).

python benchmarks/bench_query_step.py [--sizes 10000 100000 481000] [--clip_images 100]
    [--network CLIP:RN50] [--crop 224]
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

from active_learning.acquisition import bald
from active_learning.mc_dropout import draw_masks, linear_head_probabilities
from active_learning.selection import candidate_indices, select_query

WIDTH, PASSES, DROPOUT, QUERY, LABELLED = 1024, 10, 0.5, 500, 2000
REPEATS = 3


def make_cache(path: Path, rows: int, width: int, seed: int = 0) -> None:
    """A float32 .npy feature cache of random features, written in chunks."""
    rng = np.random.default_rng(seed)
    cache = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, width))
    for start in range(0, rows, 65536):
        stop = min(start + 65536, rows)
        cache[start:stop] = rng.standard_normal((stop - start, width), dtype=np.float32)
    cache.flush()


def query_step(features, labels, labelled, weight, seed: int) -> dict[str, float]:
    """One step; returns the seconds of each part."""
    times = {}
    start = time.perf_counter()
    candidates = candidate_indices(len(labels), labelled, 0, np.random.default_rng(seed))
    masks = draw_masks(PASSES, features.shape[1], DROPOUT, seed)
    probs = linear_head_probabilities(features, weight, 0.0, masks, indices=candidates)
    times["mc_passes"] = time.perf_counter() - start
    mark = time.perf_counter()
    scores = bald(probs)
    times["score"] = time.perf_counter() - mark
    mark = time.perf_counter()
    rng = np.random.default_rng(seed)
    chosen, _ = select_query(candidates, scores, QUERY, rng, classes=labels[candidates])
    times["select"] = time.perf_counter() - mark
    times["total"] = time.perf_counter() - start
    assert chosen.size == QUERY
    return times


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


def allocated_mb(features, labels, labelled, weight) -> float:
    """Peak memory one more step allocates (numpy reports its buffers to tracemalloc), not
    counting the pages of the memory-mapped cache, which the page cache holds and may drop:
    what a pool larger than memory needs."""
    tracemalloc.start()
    try:
        query_step(features, labels, labelled, weight, REPEATS)
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def child(cache: Path, rows: int, per_sample: bool) -> dict[str, float]:
    """Measure one pool size: the first ``rows`` rows of the cache (in its own process)."""
    features = np.load(cache, mmap_mode="r")[:rows]
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, size=rows)
    labelled = rng.choice(rows, size=LABELLED, replace=False)
    weight = rng.standard_normal(WIDTH).astype(np.float32) / np.sqrt(WIDTH)
    rss_before = peak_rss_mb()
    runs = [query_step(features, labels, labelled, weight, seed) for seed in range(REPEATS)]
    result = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
    result["rss_before_mb"] = rss_before
    result["peak_rss_mb"] = peak_rss_mb()
    result["allocated_mb"] = allocated_mb(features, labels, labelled, weight)
    result["cache_mb"] = features.nbytes / 2**20
    if per_sample:
        result["per_sample_masks"] = per_sample_masks_step(features, weight, 0)
    return result


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


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 481_000])
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)  # CACHE ROWS
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
        print(json.dumps(child(Path(args.child[0]), int(args.child[1]), args.per_sample)))
        return
    print(
        f"one query step: T={PASSES} shared-mask MC-dropout passes of a dropout({DROPOUT}) -> "
        f"linear head over a float32 [N, {WIDTH}] memory-mapped cache ({LABELLED} rows "
        f"labelled), BALD, balanced top-{QUERY}; median of {REPEATS}; torch threads "
        f"{torch.get_num_threads()}"
    )
    header = (
        f"{'pool':>8} {'cache MB':>9} {'MC passes s':>12} {'score s':>8} {'select s':>9} "
        f"{'total s':>8} {'RSS before MB':>14} {'peak RSS MB':>12} {'allocated MB':>13}"
    )
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "features.npy"
        start = time.perf_counter()
        make_cache(cache, max(args.sizes), WIDTH)
        print(f"(cache of {max(args.sizes)} rows written in {time.perf_counter() - start:.1f} s)")
        print(header)
        for i, rows in enumerate(args.sizes):
            command = [sys.executable, __file__, "--child", str(cache), str(rows)]
            command += ["--per_sample"] if i == 0 else []
            out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            r = results[rows] = json.loads(out.strip().splitlines()[-1])
            print(
                f"{rows:>8} {r['cache_mb']:>9.0f} {r['mc_passes']:>12.3f} {r['score']:>8.3f} "
                f"{r['select']:>9.3f} {r['total']:>8.3f} {r['rss_before_mb']:>14.0f} "
                f"{r['peak_rss_mb']:>12.0f} {r['allocated_mb']:>13.0f}"
            )
    first = results[args.sizes[0]]
    print(
        f"\nper-sample masks at {args.sizes[0]}: {first['per_sample_masks']:.3f} s for the "
        f"passes = {first['per_sample_masks'] / first['mc_passes']:.0f}x the shared-mask passes"
    )
    largest = results[args.sizes[-1]]
    print(
        f"{args.sizes[-1]} rows: {largest['total']:.3f} s (target 1 s), peak RSS "
        f"{largest['peak_rss_mb'] / 1024:.2f} GB (target 2 GB), allocated "
        f"{largest['allocated_mb'] / 1024:.2f} GB (the mapped cache not counted)"
    )
    if args.clip_images:
        clip_cached_vs_recomputed(args.clip_images, args.network, args.crop)


if __name__ == "__main__":
    main()
