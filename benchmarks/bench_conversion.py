"""Conversion throughput and the scratch disk of a streamed subset build.

1. Images/s of the one conversion (decode, EXIF orientation, centre crop, Lanczos resize to
   256, JPEG q90) for 1024x1024 PNG sources like StyleGAN3's: one process, then the process
   pool over every core (both write the JPEGs atomically, as a build does).
2. A subset build against the local Hub stand-in (an archive split into parts, streamed part
   by part): the peak scratch disk, from the downloader's meter and from polling the scratch
   folder, relative to the archive's size, with 0 and 1 parts prefetched.

python benchmarks/bench_conversion.py [--images 48] [--parts 8] [--archive_images 64]
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
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' Hub stand-in

from datagen import make_sentry_subset
from datagen.convert import ConversionPool, Task, default_workers
from datagen.preprocess import Preprocessing
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


def conversion_rate(sources: list[bytes], workers: int, folder: Path) -> float:
    """Images/s once the pool's processes are up (process start-up is timed separately)."""
    prep = Preprocessing()
    with ConversionPool(prep, workers) as pool:
        start = time.perf_counter()
        for i in range(workers):  # start every process (spawn, imports)
            pool.submit(Task(sources[i], str(folder / "warm" / f"{i}.jpg")))
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
            f"{result.peak_scratch / 1e6:.1f} MB (meter), {polled[0] / 1e6:.1f} MB (polled) "
            f"= {result.peak_scratch / archive_size:.1%} of the {archive_size / 1e6:.1f} MB "
            f"archive; {folder_size(root / 'ImageData') / 1e6:.1f} MB of JPEGs"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=48, help="1024x1024 PNGs to convert")
    parser.add_argument("--parts", type=int, default=8, help="parts of the streamed archive")
    parser.add_argument("--archive_images", type=int, default=64, help="images in the archive")
    args = parser.parse_args()
    cores = default_workers()
    print(f"cores: {cores}")
    sources = [generated_png(i) for i in range(args.images)]
    mean_kb = sum(map(len, sources)) / len(sources) / 1024
    print(f"{args.images} PNG sources, 1024x1024, {mean_kb:.0f} KB each")
    with tempfile.TemporaryDirectory() as tmp:
        one = conversion_rate(sources, 1, Path(tmp))
        print(f"1 process : {one:6.1f} images/s")
        if cores > 1:
            many = conversion_rate(sources, cores, Path(tmp))
            print(f"{cores} processes: {many:6.1f} images/s ({many / one:.2f}x)")

    leaf = "stylegan3-t-ffhqu-1024x1024"
    count = args.archive_images
    members = [(f"{leaf}/{i:05d}.png", sources[i % len(sources)]) for i in range(count)]
    archive = tar_gz(members)
    hub = FakeHub()
    hub.add_parts(f"ImageData/val/stylegan3-60K/{leaf}", f"{leaf}.tar.gz", archive, args.parts, 2)
    print(f"archive: {len(archive) / 1e6:.1f} MB in {args.parts} parts")
    for prefetch in (0, 1):
        scratch_run(hub, len(archive), prefetch, cores)


if __name__ == "__main__":
    main()
