"""Rebuild a run's ``report.html`` from the files it saved.

RUN_DIR is a results folder of a training, test or active-learning run (it holds metrics.json
or al_results.json). The page shows the run's settings and headline numbers, the per-source
table, the ROC and per-source plots, for active learning the learning curve, the class balance
of every query and a sample of the queried images, and per source the most confident mistakes
as thumbnails read from the dataset. It is one self-contained file: no network, no JavaScript.
--heatmaps adds beside every gallery thumbnail a Grad-CAM heat map of the run's detector.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from rfd_common.errors import UserError, exit_on_user_error
from UniversalFakeDetect.report.render import (
    MISTAKES_PER_SOURCE,
    QUERIED_PER_ITERATION,
    REPORT_HTML,
    HeatmapRequest,
    write_html_report,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m UniversalFakeDetect.report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", type=Path, help="the run's results folder")
    parser.add_argument(
        "--out", type=Path, help=f"where to write the page (default: RUN_DIR/{REPORT_HTML})"
    )
    parser.add_argument(
        "--data_root",
        type=Path,
        help="the folder the image paths of predictions.csv are relative to (default: the "
        "dataset root recorded in metrics.json)",
    )
    parser.add_argument(
        "--per_source",
        type=int,
        default=MISTAKES_PER_SOURCE,
        help=f"most confident mistakes shown per source ({MISTAKES_PER_SOURCE})",
    )
    parser.add_argument(
        "--per_iteration",
        type=int,
        default=QUERIED_PER_ITERATION,
        help=f"queried images shown per active-learning iteration ({QUERIED_PER_ITERATION})",
    )
    parser.add_argument(
        "--heatmaps",
        action="store_true",
        help="beside every gallery thumbnail, a Grad-CAM heat map of the run's detector "
        "checkpoint: a false positive explained as fake (what made it look fake), a false "
        "negative as real, a queried image as its verdict. Costs about 1 s per image on the "
        "CPU for a ResNet-50 (more for ViT-L/14): minutes for a full page (off by default)",
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        metavar="PATH",
        help="with --heatmaps, the detector checkpoint (.safetensors) to explain with "
        "(default: the one recorded in metrics.json)",
    )
    return parser


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for flag, value in (("--per_source", args.per_source), ("--per_iteration", args.per_iteration)):
        if value < 0:
            raise UserError(f"{flag} {value}: must be 0 or more")
    if args.out is not None and args.out.is_dir():
        raise UserError(f"{args.out}: is a folder; --out names the page file")
    if args.checkpoint is not None and not args.heatmaps:
        raise UserError(f"--checkpoint {args.checkpoint}: only used with --heatmaps")
    heatmaps = HeatmapRequest(args.checkpoint) if args.heatmaps else None
    began = time.perf_counter()
    try:
        path = write_html_report(
            args.run_dir, args.data_root, args.out, heatmaps,
            per_source=args.per_source, per_iteration=args.per_iteration,
        )  # fmt: skip
    except OSError as exc:
        raise UserError(
            f"{exc.filename or args.out}: cannot write the page ({exc.strerror})"
        ) from exc
    seconds = time.perf_counter() - began
    print(f"{path} ({path.stat().st_size / 1024:.0f} KiB, {seconds:.2f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
