"""Build the paper's subset of the Sentry / Fake2M fakes from the Hugging Face Hub.

For every source of the catalog (below) the tar parts of its archives are listed, ordered by
their number, and the first fraction of them is fetched one part at a time (with retries,
resuming partial downloads). The parts of an archive stream through one tar reader, members
are converted to 256x256 JPEG as they stream (over all cores), and each part is deleted once
read: about one part (3.2 GB) of scratch disk instead of the whole archive. A stream cut by
keeping only the first parts ends cleanly at its last whole member.

Most archives hold several leaf folders inside the tar (``SDv15-CC30K``: two, of which the
catalog keeps ``SDv15R-dpmsolver-25-15K``); images land in
``ImageData/<split>/<source folder>/<leaf>/``. Members of leaves the catalog does not keep,
and members larger than --max_member_bytes, are skipped unread and counted in the summary.

Interrupted? Run the same command again: finished sources are skipped, converted images are
kept, partial downloads resume. manifest.csv is rewritten atomically after each source.

Examples::

    python datagen/make_sentry_subset.py --dry_run
    python datagen/make_sentry_subset.py --local_dataset_path ~/data/sentry-dataset
    python datagen/make_sentry_subset.py --sources val --max_images_per_source 500
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field

from datagen.build_cli import (
    add_common_arguments,
    format_summary,
    non_negative_int,
    preprocessing_from_args,
)
from datagen.catalog import (
    HUB_REPO_ID,
    HUB_SOURCES,
    HubSource,
    format_catalog,
    select_hub_sources,
)
from rfd_common.errors import UserError, exit_on_user_error


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from exc
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python datagen/make_sentry_subset.py",
        description=__doc__,
        epilog="catalog (fraction = share of each archive's tar parts kept):\n" + format_catalog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common_arguments(parser)
    parser.add_argument(
        "--repo_id", default=HUB_REPO_ID, help=f"dataset repository (default {HUB_REPO_ID})"
    )
    parser.add_argument(
        "--revision", default="main", help="branch, tag or commit of the repository (default main)"
    )
    parser.add_argument(
        "--endpoint",
        help="Hub URL, e.g. a mirror (default $HF_ENDPOINT, else https://huggingface.co)",
    )
    parser.add_argument(
        "--sources",
        nargs="+",
        metavar="NAME",
        help="catalog sources to build, or 'train'/'val' (default: all)",
    )
    parser.add_argument(
        "--train_fraction",
        type=fraction,
        help="share of tar parts kept for every train source (default: the catalog's)",
    )
    parser.add_argument(
        "--val_fraction",
        type=fraction,
        help="share of tar parts kept for every val source (default: the catalog's 0.5)",
    )
    parser.add_argument(
        "--prefetch",
        type=non_negative_int,
        default=1,
        help="parts downloaded ahead of the reader (default 1: scratch for two parts; "
        "0: one part at a time)",
    )
    return parser


@dataclass
class BuildResult:
    """What :func:`build` planned and (unless a dry run) did."""

    plans: list = field(default_factory=list)
    reports: list = field(default_factory=list)
    peak_scratch: int = 0
    downloaded: int = 0
    summary: str = ""


def build(args: argparse.Namespace, catalog: Sequence[HubSource] = HUB_SOURCES) -> BuildResult:
    """Plan and (unless ``--dry_run``) build; ``catalog`` replaces the built-in table."""
    from datagen.convert import ConversionPool
    from datagen.dataset_root import DatasetRoot
    from datagen.download import Downloader
    from datagen.sentry.build import BuildOptions, build_source
    from datagen.sentry.hub import HubClient
    from datagen.sentry.plan import format_plan, plan_source

    prep = preprocessing_from_args(args)
    sources = select_hub_sources(args.sources, args.train_fraction, args.val_fraction, catalog)
    client = HubClient(args.repo_id, args.revision, args.endpoint)
    commit = client.resolve_commit()
    print(f"{args.repo_id} @ {args.revision} = commit {commit} on {client.endpoint}")
    plans = [plan_source(client, s, args.max_images_per_source) for s in sources]
    result = BuildResult(plans=plans)
    if args.dry_run:
        result.summary = format_plan(result.plans, args.prefetch, args.keep_archives)
        print(result.summary)
        return result
    downloader = Downloader(retries=args.retries, progress=not args.quiet)
    options = BuildOptions(
        max_images=args.max_images_per_source,
        prefetch=args.prefetch,
        keep_archives=args.keep_archives,
        progress=not args.quiet,
        max_member_bytes=args.max_member_bytes,
    )
    with (
        DatasetRoot(args.local_dataset_path, prep, args.scratch_dir) as root,
        ConversionPool(prep, args.workers) as pool,
    ):
        for plan in result.plans:
            result.reports.append(build_source(plan, client, downloader, root, pool, options))
        root.prune_scratch()
        result.peak_scratch = downloader.meter.peak
        result.downloaded = downloader.bytes_downloaded
        result.summary = format_summary(
            result.reports, root, result.peak_scratch, result.downloaded
        )
    print(result.summary)
    return result


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.local_dataset_path.exists() and not args.local_dataset_path.is_dir():
        raise UserError(f"--local_dataset_path {args.local_dataset_path}: not a folder")
    build(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
