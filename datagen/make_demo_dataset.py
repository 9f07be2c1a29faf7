"""Generate the embedded demo dataset (real photos cut from packaged images, decoder fakes).

Deterministic: the same seed gives byte-identical images, manifest.csv and dataset.json.
Without --out the dataset goes to the cache folder that every script uses when no data path
is given ($RFD_CACHE_DIR, default ~/.cache/real-fake-detection).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from datagen.demo import DemoConfig, ensure_demo_dataset, generate_demo_dataset
from datagen.manifest import read_manifest, summarize
from rfd_common.errors import exit_on_user_error


def build_parser() -> argparse.ArgumentParser:
    defaults = DemoConfig()
    parser = argparse.ArgumentParser(
        prog="python -m datagen.make_demo_dataset",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, help="new folder to write (default: the cache)")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="random seed (default 0)")
    parser.add_argument(
        "--size",
        type=int,
        default=defaults.size,
        help=f"image side in pixels, a multiple of 4 (default {defaults.size}; 256 matches the "
        "full dataset but makes CPU training slower)",
    )
    parser.add_argument(
        "--train_images",
        type=int,
        default=defaults.train_images,
        help=f"training images, half real, half fake (default {defaults.train_images})",
    )
    parser.add_argument(
        "--val_images",
        type=int,
        default=defaults.val_images,
        help=f"validation images, half real, half fake (default {defaults.val_images})",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = DemoConfig(
        seed=args.seed, size=args.size, train_images=args.train_images, val_images=args.val_images
    )
    start = time.perf_counter()
    if args.out is None:
        out = ensure_demo_dataset(config, progress=not args.quiet)
    else:
        out = generate_demo_dataset(args.out, config, progress=not args.quiet)
    seconds = time.perf_counter() - start
    for split, sources in summarize(read_manifest(out, check_files=False)).items():
        for source, counts in sources.items():
            print(f"{split:5s} {source:22s} real {counts['real']:5d}  fake {counts['fake']:5d}")
    print(f"demo dataset ready in {out} ({seconds:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
