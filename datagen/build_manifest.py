"""Build ``manifest.csv`` for data laid out by other tools, or check an existing one.

Examples::

    python -m datagen.build_manifest --layout wang2020 --root ~/data/cnnspot_test --split val
    python -m datagen.build_manifest --layout metadata --root ~/data/sentry-dataset
    python -m datagen.build_manifest --check --root ~/data/sentry-dataset
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from datagen.manifest import (
    MANIFEST_NAME,
    SPLITS,
    read_manifest,
    summarize,
    validate_rows,
    write_manifest,
)
from datagen.readers import rows_from_class_folders, rows_from_original_metadata
from rfd_common.errors import UserError, exit_on_user_error

LAYOUTS = ("wang2020", "metadata")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m datagen.build_manifest",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--root", type=Path, required=True, help="dataset root folder")
    parser.add_argument(
        "--layout",
        choices=LAYOUTS,
        help="wang2020: <generator>/[<category>/]{0_real,1_fake}/* folders; "
        "metadata: the original project's MetaData/{train,val}/*.csv (0 = fake, 1 = real)",
    )
    parser.add_argument(
        "--split", choices=SPLITS, default="val", help="split for --layout wang2020 (default val)"
    )
    parser.add_argument(
        "--out", type=Path, help=f"manifest to write (default ROOT/{MANIFEST_NAME})"
    )
    parser.add_argument("--check", action="store_true", help="only validate ROOT's manifest")
    return parser


def _print_summary(rows_summary: dict) -> None:
    for split, sources in rows_summary.items():
        for source, counts in sources.items():
            print(f"{split:5s} {source:40s} real {counts['real']:7d}  fake {counts['fake']:7d}")


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    root: Path = args.root
    if not root.is_dir():
        raise UserError(f"--root {root}: folder not found")
    if args.check:
        rows = read_manifest(root)
        _print_summary(summarize(rows))
        print(f"{root / MANIFEST_NAME}: {len(rows)} rows, valid")
        return 0
    if args.layout is None:
        raise UserError("--layout is required unless --check is given (wang2020 or metadata)")
    if args.layout == "wang2020":
        rows = rows_from_class_folders(root, split=args.split, root=root)
    else:
        rows = rows_from_original_metadata(root / "MetaData", root=root)
    out: Path = args.out or root / MANIFEST_NAME
    if out.is_dir():
        out = out / MANIFEST_NAME
    if not out.parent.is_dir():
        raise UserError(f"--out {out}: folder {out.parent} not found")
    # Paths are relative to ROOT, so check the images there even when the manifest goes elsewhere.
    validate_rows(rows, root=root, origin=str(out))
    try:
        written = write_manifest(rows, out, check_files=False)
    except OSError as exc:
        raise UserError(f"--out {out}: cannot write the manifest ({exc.strerror or exc})") from exc
    _print_summary(summarize(rows))
    print(f"wrote {written} ({len(rows)} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
