"""Add the real photographs to the dataset, or import the ready subset from Kaggle.

Sources (--sources, default all four real sets):
  cc3m-train, cc3m-val (or cc3m for both)  Conceptual Captions through img2dataset; the TSVs
                                           (caption<TAB>url, no header) are fetched from
                                           Google or read from --cc3m_train_tsv/--cc3m_val_tsv
  ffhq, celeba-hq                          FFHQ-256 and CelebA-HQ-256 (Kaggle datasets, or a
                                           Hugging Face dataset repository: --endpoint)
  afhq-v2                                  AFHQv2 from its public zip
  kaggle-subset                            the ready subset (carrotpeeler/sentry-subset),
                                           imported into the manifest (not in the default)

img2dataset is told to keep the originals; every image then goes through the same
conversion as the fakes (center crop to 256x256, JPEG q90 4:2:0, recorded in dataset.json
before the first image is written; a folder keeps its settings for all its images).
Kaggle needs credentials: KAGGLE_USERNAME and KAGGLE_KEY (or ~/.kaggle/kaggle.json).
Before any source starts (and with --dry_run) the imports and credentials of every requested
source are checked: every problem is reported at once, and nothing is downloaded.
Interrupted? Run the same command again: finished sources are skipped, converted images kept.

Examples::

    python datagen/add_real_data.py --local_dataset_path ~/data/sentry-dataset
    python datagen/add_real_data.py --sources afhq-v2 celeba-hq --max_images_per_source 1000
    python datagen/add_real_data.py --sources kaggle-subset --local_dataset_path ~/data/subset
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from datagen.build_cli import (
    add_common_arguments,
    format_summary,
    positive_int,
    preprocessing_from_args,
)
from datagen.catalog import (
    AFHQ_V2_URL,
    CC3M_TRAIN_TSV_URL,
    CC3M_VAL_TSV_URL,
    KAGGLE_SUBSET,
    REAL_SOURCES,
    RealSource,
    leaf_labels,
    select_real_sources,
)
from rfd_common.errors import UserError, exit_on_user_error

if TYPE_CHECKING:
    from datagen.preprocess import Preprocessing
    from datagen.real_sets.build import RealOptions


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python datagen/add_real_data.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common_arguments(parser)
    parser.add_argument(
        "--sources",
        nargs="+",
        metavar="NAME",
        help="cc3m, cc3m-train, cc3m-val, ffhq, afhq-v2, celeba-hq, kaggle-subset "
        "(default: the four real sets)",
    )
    parser.add_argument(
        "--cc3m_train_tsv",
        default=CC3M_TRAIN_TSV_URL,
        help="Conceptual Captions training TSV: a local file or a URL (default: Google's)",
    )
    parser.add_argument(
        "--cc3m_val_tsv",
        default=CC3M_VAL_TSV_URL,
        help="Conceptual Captions validation TSV: a local file or a URL (default: Google's)",
    )
    parser.add_argument(
        "--cc3m_chunk_urls",
        type=positive_int,
        default=10_000,
        help="URLs per img2dataset run; a finished chunk is never fetched again (default 10000)",
    )
    parser.add_argument(
        "--cc3m_threads",
        type=positive_int,
        default=64,
        help="img2dataset download threads (default 64)",
    )
    parser.add_argument(
        "--cc3m_timeout",
        type=positive_int,
        default=10,
        help="seconds before img2dataset gives up on one URL (default 10)",
    )
    parser.add_argument("--afhq_url", default=AFHQ_V2_URL, help="AFHQv2 zip: a URL or a file")
    parser.add_argument(
        "--endpoint",
        help="Hugging Face Hub URL for the sources stored there, e.g. a mirror "
        "(default $HF_ENDPOINT, else https://huggingface.co)",
    )
    return parser


def _real_options(args: argparse.Namespace) -> RealOptions:
    """The options of every real source, from the command line."""
    from datagen.real_sets.build import RealOptions
    from datagen.real_sets.cc3m import Cc3mOptions

    return RealOptions(
        max_images=args.max_images_per_source,
        keep_archives=args.keep_archives,
        progress=not args.quiet,
        cc3m=Cc3mOptions(
            chunk_urls=args.cc3m_chunk_urls, threads=args.cc3m_threads, timeout=args.cc3m_timeout
        ),
        origins={
            "cc3m-train": args.cc3m_train_tsv,
            "cc3m-val": args.cc3m_val_tsv,
            "afhq-v2": args.afhq_url,
        },
        endpoint=args.endpoint,
        max_member_bytes=args.max_member_bytes,
    )


def _problems(
    args: argparse.Namespace,
    prep: Preprocessing,
    sources: list[RealSource],
    subset: bool,
    options: RealOptions,
    kaggle_given: bool,
) -> list[str]:
    """Everything that would stop the run: the sources' needs, the folder's settings."""
    from datagen.dataset_root import DatasetRoot
    from datagen.real_sets.build import check_sources

    problems = check_sources(sources, subset, options, kaggle_given=kaggle_given)
    settings = DatasetRoot(args.local_dataset_path, prep, args.scratch_dir).settings_problem()
    if settings is not None:
        problems.append(settings)
    return problems


def _build_all(
    args: argparse.Namespace,
    prep: Preprocessing,
    sources: list[RealSource],
    subset: bool,
    options: RealOptions,
    kaggle: object | None,
    catalog: Sequence[RealSource],
) -> None:
    """Build every source (then the Kaggle subset, if asked) and print the summary."""
    from datagen.convert import ConversionPool
    from datagen.dataset_root import DatasetRoot
    from datagen.download import Downloader
    from datagen.real_sets.build import build_real_source, import_kaggle_subset
    from datagen.real_sets.kaggle import KaggleApiClient

    client = kaggle if kaggle is not None else KaggleApiClient()
    downloader = Downloader(retries=args.retries, progress=not args.quiet)
    reports = []
    with (
        DatasetRoot(args.local_dataset_path, prep, args.scratch_dir) as root,
        ConversionPool(prep, args.workers) as pool,
    ):
        for source in sources:
            reports.append(
                build_real_source(source, root, pool, downloader, client, options)  # type: ignore[arg-type]
            )
        if subset:
            labels = leaf_labels(real=catalog)
            reports += import_kaggle_subset(root, pool, downloader, client, labels, options)  # type: ignore[arg-type]
        root.prune_scratch()
        print(format_summary(reports, root, downloader.meter.peak, downloader.bytes_downloaded))


def run(
    args: argparse.Namespace,
    kaggle: object | None = None,
    catalog: Sequence[RealSource] = REAL_SOURCES,
) -> int:
    """Build the chosen sources; ``kaggle`` replaces the real Kaggle client, ``catalog`` the
    built-in table (the ``hf`` kind's Hub is chosen by --endpoint).

    Everything the requested sources need (imports, credentials, local files) is checked
    first, in a dry run too: all problems in one :class:`UserError`, before any download.
    """
    from datagen.real_sets.build import describe_plan, format_problems

    prep = preprocessing_from_args(args)
    sources, subset = select_real_sources(args.sources, catalog)
    options = _real_options(args)
    problems = _problems(args, prep, sources, subset, options, kaggle_given=kaggle is not None)
    if args.dry_run:
        print(describe_plan(sources, subset, options))
    if problems:
        raise UserError(format_problems(problems))
    if args.dry_run:
        return 0
    _build_all(args, prep, sources, subset, options, kaggle, catalog)
    return 0


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.local_dataset_path.exists() and not args.local_dataset_path.is_dir():
        raise UserError(f"--local_dataset_path {args.local_dataset_path}: not a folder")
    if args.sources and KAGGLE_SUBSET in args.sources and len(set(args.sources)) > 1:
        raise UserError(
            f"--sources: {KAGGLE_SUBSET} is a whole dataset (reals and fakes in the same "
            "folders as the other sources); import it alone, into its own --local_dataset_path"
        )
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
