"""Time the demo dataset's generation at 64 px (the default) and 256 px; print images/s.

python benchmarks/bench_demo_dataset.py [--sizes 64 256] [--train_images 2400] [--val_images 1200]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from datagen.demo import DemoConfig, generate_demo_dataset


def main(argv: Sequence[str] | None = None) -> None:
    defaults = DemoConfig()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--train_images", type=int, default=defaults.train_images)
    parser.add_argument("--val_images", type=int, default=defaults.val_images)
    args = parser.parse_args(argv)
    print(f"torch threads: {torch.get_num_threads()}")
    rates = {}
    for size in args.sizes:
        config = DemoConfig(size=size, train_images=args.train_images, val_images=args.val_images)
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            generate_demo_dataset(Path(tmp) / "demo", config, progress=False)
            seconds = time.perf_counter() - start
        images = config.train_images + config.val_images
        rates[size] = images / seconds
        print(f"{size:4d} px: {images} images in {seconds:7.2f} s = {rates[size]:7.1f} images/s")
    base = args.sizes[0]
    for size in args.sizes[1:]:
        print(f"{base} px is {rates[base] / rates[size]:.1f}x faster than {size} px")


if __name__ == "__main__":
    main()
