"""Conversion throughput against PNG decoding, and the scratch disk of a streamed subset build.

1. On the same generated 1024x1024 PNGs (StyleGAN3-like), in one process: PNG decoding alone
   (``Image.open`` + ``load``) against the whole conversion of a build (decode, EXIF orientation,
   centre crop, resize to 256, JPEG q90, atomic write). Decoding is work no conversion
   can skip, so ``ratio = conversion throughput / decode-only throughput`` (per core) says how
   close the conversion is to that floor (target: at least 0.8, with the default filter; the
   other ``--resample`` filters are printed beside it). One thread, as in each conversion
   process. Rounds alternate between the two so that other load on the machine hits both
   alike; the best round of each is kept. Then the process pool over every core, per core,
   against the same decode rate.
2. A subset build against the local Hub stand-in (an archive split into parts, streamed part
   by part): the peak scratch disk, from the downloader's meter and from polling the scratch
   folder, relative to the archive's size, with 0 and 1 parts prefetched.

python benchmarks/bench_conversion.py [--images 24] [--rounds 5] [--parts 8] [--archive_images 64]
    [--side 1024] [--workers N]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import PIL
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' Hub stand-in

from datagen import make_sentry_subset
from datagen.convert import ConversionPool, Task, default_workers, run_task
from datagen.preprocess import Preprocessing
from datagen.resampling import RESAMPLING, use_one_thread
from tests.datagen.fake_hub import FakeHub, tar_gz


def generated_png(seed: int, side: int = 1024) -> bytes:
    """A face-generator-like PNG: smooth colour fields, texture and fine noise."""
    rng = np.random.default_rng(seed)
    low = rng.random((side // 64, side // 64, 3)).astype(np.float32)
    image = Image.fromarray((low * 255).astype(np.uint8)).resize((side, side), Image.BICUBIC)
    pixels = np.asarray(image, dtype=np.float32) + rng.normal(0, 6, (side, side, 3))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def decode_seconds(sources: list[bytes]) -> float:
    """Seconds to decode every source (PNG decoding alone, nothing kept)."""
    start = time.perf_counter()
    for data in sources:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
    return time.perf_counter() - start


def convert_seconds(sources: list[bytes], prep: Preprocessing, folder: Path) -> float:
    """Seconds for the whole conversion of every source, as a build's worker does it."""
    start = time.perf_counter()
    for i, data in enumerate(sources):
        result = run_task(Task(data, str(folder / f"{i}.jpg")), prep)
        assert result.ok, result.error
    return time.perf_counter() - start


def single_core(sources: list[bytes], rounds: int, folder: Path) -> float:
    """Decode-only and conversion throughput in this process; returns decode images/s.

    The default filter first, then every other ``--resample`` choice against the same decode.
    """
    default = Preprocessing().resample
    filters = [default, *sorted(set(RESAMPLING) - {default})]
    preps = [Preprocessing(resample=name) for name in filters]
    for prep in preps:
        convert_seconds(sources[:2], prep, folder)  # first-call costs (imports, codec set-up)
    decode: list[float] = []
    convert: dict[str, list[float]] = {prep.resample: [] for prep in preps}
    for _ in range(rounds):
        decode.append(decode_seconds(sources))
        for prep in preps:
            convert[prep.resample].append(convert_seconds(sources, prep, folder))
    n = len(sources)
    best_decode = min(decode)
    print(
        f"decode only : {n / best_decode:6.1f} images/s ({1e3 * best_decode / n:.1f} ms each; "
        f"rounds {', '.join(f'{1e3 * t / n:.1f}' for t in decode)} ms)"
    )
    for name, seconds in convert.items():
        best = min(seconds)
        label = f"{name} (default)" if name == filters[0] else name
        print(
            f"conversion, {label:<17}: {n / best:6.1f} images/s ({1e3 * best / n:.1f} ms each; "
            f"rounds {', '.join(f'{1e3 * t / n:.1f}' for t in seconds)} ms); ratio to "
            f"decode-only, one core: {best_decode / best:.2f}"
        )
    return n / best_decode


def pool_rate(sources: list[bytes], workers: int, folder: Path) -> float:
    """Images/s of the process pool once its processes are up (start-up timed separately)."""
    prep = Preprocessing()
    with ConversionPool(prep, workers) as pool:
        start = time.perf_counter()
        for i in range(workers):  # start every process (spawn, imports)
            pool.submit(Task(sources[i % len(sources)], str(folder / "warm" / f"{i}.jpg")))
        pool.drain()
        print(f"  {workers} process(es) started in {time.perf_counter() - start:.2f} s")
        start = time.perf_counter()
        for i, data in enumerate(sources):
            pool.submit(Task(data, str(folder / f"w{workers}" / f"{i}.jpg")))
        pool.drain()
        return len(sources) / (time.perf_counter() - start)


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def scratch_run(hub: FakeHub, archive_size: int, prefetch: int, workers: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, hub.serve() as served:
        root = Path(tmp) / "ds"
        scratch = root / ".datagen" / "scratch"
        polled, done = [0], threading.Event()

        def poll() -> None:
            while not done.is_set():
                if scratch.is_dir():
                    polled[0] = max(polled[0], folder_size(scratch))
                time.sleep(0.005)

        watcher = threading.Thread(target=poll, daemon=True)
        watcher.start()
        argv = [
            "--local_dataset_path", str(root), "--endpoint", served.endpoint,
            "--sources", "stylegan3-60K", "--val_fraction", "1.0", "--quiet",
            "--workers", str(workers), "--prefetch", str(prefetch),
        ]  # fmt: skip
        start = time.perf_counter()
        parsed = make_sentry_subset.build_parser().parse_args(argv)
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
            result = make_sentry_subset.build(parsed)
        seconds = time.perf_counter() - start
        done.set()
        watcher.join()
        images = sum(r.total_images for r in result.reports)
        print(
            f"prefetch {prefetch}: {images} images in {seconds:.1f} s; peak scratch "
            f"{result.peak_scratch / 1e6:.2f} MB (meter), {polled[0] / 1e6:.2f} MB (polled) "
            f"= {result.peak_scratch / archive_size:.1%} of the {archive_size / 1e6:.2f} MB "
            f"archive; {folder_size(root / 'ImageData') / 1e6:.2f} MB of JPEGs"
        )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=24, help="PNGs to convert")
    parser.add_argument("--side", type=int, default=1024, help="side of the square PNGs")
    parser.add_argument("--rounds", type=int, default=5, help="alternating timing rounds")
    parser.add_argument("--parts", type=int, default=8, help="parts of the streamed archive")
    parser.add_argument("--archive_images", type=int, default=64, help="images in the archive")
    parser.add_argument("--skip_scratch", action="store_true", help="only the conversion part")
    parser.add_argument(
        "--workers", type=int, default=default_workers(), help="processes (default: every core)"
    )
    args = parser.parse_args(argv)
    use_one_thread()  # before torch is first imported: one core, as in a conversion process
    cores = args.workers
    print(f"cores: {cores} of {default_workers()}; Pillow {PIL.__version__}")
    sources = [generated_png(i, args.side) for i in range(args.images)]
    mean_kb = sum(map(len, sources)) / len(sources) / 1024
    print(f"{args.images} PNG sources, {args.side}x{args.side}, {mean_kb:.0f} KB each")
    with tempfile.TemporaryDirectory() as tmp:
        decode_rate = single_core(sources, args.rounds, Path(tmp) / "one")
        if cores > 1:
            many = pool_rate(sources, cores, Path(tmp))
            print(
                f"{cores} processes: {many:6.1f} images/s = {many / cores:.1f} per core; ratio "
                f"per core against decode-only: {many / cores / decode_rate:.2f}"
            )
    if args.skip_scratch:
        return

    leaf = "stylegan3-t-ffhqu-1024x1024"
    count = args.archive_images
    members = [(f"{leaf}/{i:05d}.png", sources[i % len(sources)]) for i in range(count)]
    archive = tar_gz(members)
    hub = FakeHub()
    hub.add_parts(f"ImageData/val/stylegan3-60K/{leaf}", f"{leaf}.tar.gz", archive, args.parts, 2)
    print(f"archive: {len(archive) / 1e6:.2f} MB in {args.parts} parts")
    for prefetch in (0, 1):
        scratch_run(hub, len(archive), prefetch, cores)


if __name__ == "__main__":
    main()
