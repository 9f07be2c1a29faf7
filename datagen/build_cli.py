"""Command-line pieces shared by ``make_sentry_subset`` and ``add_real_data``."""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from datagen.convert import default_workers
from datagen.dataset_root import DatasetRoot
from datagen.limits import MAX_MEMBER_BYTES
from datagen.manifest import LABEL_NAMES
from datagen.preprocess import Preprocessing
from datagen.resampling import RESAMPLING
from datagen.sentry.plan import format_bytes
from datagen.source_writer import SourceReport
from rfd_common.errors import UserError

DEFAULT_ROOT = Path("sentry-dataset")
JPEG_SUBSAMPLING_CHOICES = ("4:2:0", "4:4:4")


def _int_at_least(minimum: int, wording: str) -> Callable[[str], int]:
    """An argparse ``type``: a whole number of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from exc
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {wording}, got {value}")
        return value

    return parse


positive_int = _int_at_least(1, "at least 1")
non_negative_int = _int_at_least(0, "0 or more")


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Dataset folder, limits, processes, scratch, preprocessing and output flags."""
    _add_folder_and_limit_arguments(parser)
    _add_download_arguments(parser)
    _add_preprocessing_arguments(parser)
    _add_member_limit_argument(parser)
    _add_output_arguments(parser)


def _add_folder_and_limit_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the dataset goes, how many images per leaf, how many conversion processes."""
    parser.add_argument(
        "--local_dataset_path",
        type=Path,
        default=DEFAULT_ROOT,
        help="dataset folder to build or extend (default ./sentry-dataset)",
    )
    parser.add_argument(
        "--max_images_per_source",
        type=positive_int,
        help="keep at most this many images per leaf folder (the first ones in archive order)",
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        help=f"conversion processes (default: the available cores, here {default_workers()})",
    )


def _add_download_arguments(parser: argparse.ArgumentParser) -> None:
    """What happens to downloaded archives, where they go, how often a download is retried."""
    parser.add_argument(
        "--keep_archives",
        action="store_true",
        help="keep downloaded archives in the scratch folder instead of deleting each once read",
    )
    parser.add_argument(
        "--scratch_dir",
        type=Path,
        help="where archives are downloaded (default LOCAL_DATASET_PATH/.datagen/scratch)",
    )
    parser.add_argument(
        "--retries",
        type=non_negative_int,
        default=5,
        help="extra attempts per download after a network error (default 5)",
    )


def _add_preprocessing_arguments(parser: argparse.ArgumentParser) -> None:
    """The one conversion every image goes through (see :func:`preprocessing_from_args`)."""
    defaults = Preprocessing()
    parser.add_argument(
        "--image_size", type=positive_int, default=defaults.size, help="output side (default 256)"
    )
    parser.add_argument(
        "--resize_mode",
        choices=("center_crop", "stretch"),
        default=defaults.resize,
        help="center_crop keeps the aspect ratio (default); stretch squashes the whole image",
    )
    parser.add_argument(
        "--resample",
        choices=sorted(RESAMPLING),
        default=defaults.resample,
        help=f"resampling filter (default {defaults.resample})",
    )
    parser.add_argument(
        "--jpeg_quality",
        type=positive_int,
        default=defaults.jpeg_quality,
        help=f"JPEG quality 1-100 (default {defaults.jpeg_quality})",
    )
    parser.add_argument(
        "--jpeg_subsampling",
        choices=JPEG_SUBSAMPLING_CHOICES,
        default=defaults.subsampling,
        help=f"JPEG chroma subsampling (default {defaults.subsampling}); recorded in dataset.json "
        "like every setting, which a dataset folder keeps for all its images",
    )


def _add_member_limit_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max_member_bytes",
        type=positive_int,
        default=MAX_MEMBER_BYTES,
        help="skip unread, and count, archive members larger than this many bytes "
        f"(default {MAX_MEMBER_BYTES} = {MAX_MEMBER_BYTES >> 20} MiB; a source image is a few MB)",
    )


def _add_output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry_run", action="store_true", help="print the plan, fetch nothing")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def preprocessing_from_args(args: argparse.Namespace) -> Preprocessing:
    if not 1 <= args.jpeg_quality <= 100:
        raise UserError(f"--jpeg_quality {args.jpeg_quality}: must be in 1..100")
    if args.image_size < 16:
        raise UserError(f"--image_size {args.image_size}: must be at least 16")
    return Preprocessing(
        size=args.image_size,
        resize=args.resize_mode,
        resample=args.resample,
        jpeg_quality=args.jpeg_quality,
        subsampling=getattr(args, "jpeg_subsampling", Preprocessing().subsampling),
    )


def format_summary(
    reports: Sequence[SourceReport],
    root: DatasetRoot,
    peak_scratch: int,
    downloaded: int,
) -> str:
    """The final summary: images per source and split, skipped members, disk used."""
    lines = [f"{'source':22s} {'split':5s} {'label':5s} {'images':>8s} {'new':>8s}  note"]
    per_split: Counter[tuple[str, str]] = Counter()
    skipped: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    archive_bytes = 0
    for r in reports:
        note = "already complete" if r.already_done else ""
        if r.truncated:
            note = "stream cut at the last kept part" + (f"; {note}" if note else "")
        label = LABEL_NAMES[r.label]
        lines.append(
            f"{r.name:22s} {r.split:5s} {label:5s} {r.total_images:>8d} {r.converted:>8d}  {note}"
        )
        if len(r.images) > 1:
            for leaf, count in sorted(r.images.items()):
                lines.append(f"    {leaf:36s} {count:>8d}")
        per_split[(r.split, label)] += r.total_images
        skipped.update(r.skipped)
        for reason, names in r.examples.items():
            examples.setdefault(reason, []).extend(n for n in names if n)
        archive_bytes += r.bytes_fetched
    for split in ("train", "val"):
        real, fake = per_split[(split, "real")], per_split[(split, "fake")]
        if real or fake:
            lines.append(f"{split}: {real + fake} images ({real} real, {fake} fake)")
    if skipped:
        lines.append("skipped members:")
        for reason, count in sorted(skipped.items()):
            shown = ", ".join(examples.get(reason, [])[:3])
            lines.append(f"    {reason}: {count}" + (f" (e.g. {shown})" if shown else ""))
    if downloaded or archive_bytes:
        share = (
            f" = {peak_scratch / archive_bytes:.0%} of the archives read" if archive_bytes else ""
        )
        lines.append(
            f"downloaded {format_bytes(downloaded)}; peak scratch disk "
            f"{format_bytes(peak_scratch)}{share}"
        )
    lines.append(
        f"images on disk: {format_bytes(root.disk_usage())} in {len(root.rows)} manifest rows "
        f"({root.manifest_path})"
    )
    return "\n".join(lines)
