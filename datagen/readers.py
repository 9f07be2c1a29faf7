"""Turn other dataset layouts into manifest rows.

* ``0_real``/``1_fake`` generator folders (CNNDetection / UniversalFakeDetect test sets,
  ``--data_mode wang2020``), possibly with category folders in between
  (``progan/airplane/0_real``).
* The original project's ``MetaData/{train,val}/<source>.csv`` files, lines ``"<path> <label>"``
  where, careful, ``0`` meant fake and ``1`` meant real.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from datagen.families import infer_family
from datagen.manifest import FAKE, REAL, SPLITS, ManifestError, ManifestRow
from rfd_common.errors import UserError


def _pillow_suffixes() -> frozenset[str]:
    """Every file suffix of a format this Pillow can open (its own registry)."""
    from PIL import Image

    return frozenset(
        suffix.lower()
        for suffix, image_format in Image.registered_extensions().items()
        if image_format in Image.OPEN
    )


IMAGE_SUFFIXES = _pillow_suffixes()
CLASS_FOLDERS = {"0_real": REAL, "1_fake": FAKE}
# The source of a generator folder's real images: ``progan`` -> ``progan-real``.
REAL_SOURCE_SUFFIX = "-real"
# The original MetaData CSVs wrote 0 for fake and 1 for real.
ORIGINAL_CSV_LABELS = {"0": FAKE, "1": REAL}


def is_image_file(path: Path) -> bool:
    """True for a file whose last suffix is of a format Pillow opens (any number of dots in
    the name); hidden files are not images."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def walk_images(folder: Path, passed_over: list[Path] | None = None) -> Iterator[Path]:
    """All image files under ``folder``, in sorted order (independent of ``os.listdir`` order).

    Symlinked folders are followed (each real folder listed once, so links cannot loop); hidden
    folders (``.cache``, ``.git``...) are skipped, like hidden files. Other files that are not
    images (by suffix) are appended to ``passed_over`` when it is given. A folder that cannot
    be listed raises :class:`UserError` rather than being left out unnoticed.
    """

    def cannot_list(error: OSError) -> None:
        reason = error.strerror or type(error).__name__
        raise UserError(f"{error.filename}: cannot list this folder ({reason})") from error

    listed: set[str] = set()
    for current, dirs, files in os.walk(folder, onerror=cannot_list, followlinks=True):
        real = os.path.realpath(current)
        if real in listed:  # a link back up the tree, or a second link to one folder
            dirs[:] = []
            continue
        listed.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(current) / name
            if is_image_file(path):
                yield path
            elif passed_over is not None and not name.startswith("."):
                passed_over.append(path)


def _relative(path: Path, root: Path) -> str:
    """``path`` relative to ``root``, as written (an image may be a symlink to elsewhere)."""
    try:
        return Path(os.path.abspath(path)).relative_to(os.path.abspath(root)).as_posix()
    except ValueError:
        pass
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError as exc:
        raise UserError(f"{path}: image lies outside the dataset root {root}") from exc


def rows_from_class_folders(
    folder: Path, split: str = "val", root: Path | None = None
) -> list[ManifestRow]:
    """Rows for a ``<generator>/[<category>/]{0_real,1_fake}/*`` tree.

    ``source`` is the generator folder (the first folder below ``folder``), or ``folder``'s own
    name when ``0_real``/``1_fake`` sit directly inside it; a generator's real images get
    ``<generator>-real``, so every source holds one class and the generator's AP is computed
    against the reals. Paths are relative to ``root`` (default: ``folder``).
    """
    folder = Path(folder)
    root = Path(root) if root is not None else folder
    if split not in SPLITS:
        raise UserError(f"unknown split '{split}' (expected one of {', '.join(SPLITS)})")
    if not folder.is_dir():
        raise UserError(f"{folder}: folder not found")
    rows = []
    for image in walk_images(folder):
        parts = image.relative_to(folder).parts
        class_positions = [i for i, p in enumerate(parts[:-1]) if p in CLASS_FOLDERS]
        if not class_positions:
            continue
        position = class_positions[-1]
        label = CLASS_FOLDERS[parts[position]]
        # abspath: ``folder`` may be "." or end in "..", whose .name is not the folder's name.
        source = parts[0] if position > 0 else Path(os.path.abspath(folder)).name
        if label == REAL:
            source += REAL_SOURCE_SUFFIX
        rows.append(
            ManifestRow(
                path=_relative(image, root),
                label=label,
                source=source,
                split=split,
                family=infer_family(source, label),
            )
        )
    if not rows:
        raise UserError(
            f"{folder}: no images found in 0_real/1_fake folders; expected "
            "<generator>/0_real/*.png and <generator>/1_fake/*.png"
        )
    return rows


def rows_from_real_fake_folders(
    real: Path, fake: Path, split: str = "val", passed_over: list[Path] | None = None
) -> tuple[Path, list[ManifestRow]]:
    """UniversalFakeDetect's ``--real_path``/``--fake_path``: every image below each folder.

    Returns the common root and the rows. The source is the folder's name (its parent's for a
    ``0_real``/``1_fake`` folder); the reals' source gets ``-real`` appended. Files that are not
    images (by suffix) are appended to ``passed_over`` when given.
    """
    folders = {"--real_path": Path(real), "--fake_path": Path(fake)}
    for flag, folder in folders.items():
        if not folder.is_dir():
            raise UserError(f"{flag} {folder}: folder not found")
    root = Path(os.path.commonpath([os.path.abspath(f) for f in folders.values()]))
    rows = []
    for (flag, folder), label in zip(folders.items(), (REAL, FAKE), strict=True):
        name = Path(os.path.abspath(folder))
        base = name.parent.name if name.name in CLASS_FOLDERS else name.name
        source = base + REAL_SOURCE_SUFFIX if label == REAL else base
        images = list(walk_images(folder, passed_over))
        if not images:
            raise UserError(f"{flag} {folder}: no images there")
        rows += [
            ManifestRow(_relative(i, root), label, source, split, infer_family(source, label))
            for i in images
        ]
    return root, rows


def _dataset_relative(raw_path: str, root: Path) -> str:
    """Map a path written by the original scripts to one relative to the dataset root.

    They wrote ``<where the dataset was>/ImageData/...``; everything from ``ImageData`` on is kept.
    Other paths are taken relative to ``root`` (absolute ones must lie inside it).
    """
    posix = PurePosixPath(raw_path.replace("\\", "/"))
    parts = posix.parts
    if "ImageData" in parts:
        return PurePosixPath(*parts[parts.index("ImageData") :]).as_posix()
    if posix.is_absolute():
        return _relative(Path(raw_path), root)
    return PurePosixPath(*[p for p in parts if p != "."]).as_posix()


def rows_from_original_metadata(metadata_dir: Path, root: Path | None = None) -> list[ManifestRow]:
    """Rows from ``MetaData/{train,val}/*.csv`` (``"<path> <label>"``, 0 = fake, 1 = real).

    ``source`` is the CSV's file name without ``.csv``; ``split`` its folder.
    ``root`` defaults to the folder holding ``MetaData``.
    """
    metadata_dir = Path(metadata_dir)
    root = Path(root) if root is not None else metadata_dir.parent
    if not metadata_dir.is_dir():
        raise UserError(f"{metadata_dir}: MetaData folder not found")
    csv_files = [
        (split, csv_path)
        for split in SPLITS
        if (metadata_dir / split).is_dir()
        for csv_path in sorted((metadata_dir / split).glob("*.csv"))
    ]
    if not csv_files:
        raise UserError(f"{metadata_dir}: no train/*.csv or val/*.csv files found")
    rows = []
    for split, csv_path in csv_files:
        source = csv_path.stem
        try:
            text = csv_path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ManifestError(f"{csv_path}: not a UTF-8 text file ({exc.reason})") from exc
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            # The last whitespace-separated field is the label (a path may contain spaces).
            fields = line.strip().rsplit(maxsplit=1)
            raw_path, raw_label = fields if len(fields) == 2 else ("", "")
            if raw_label.strip() not in ORIGINAL_CSV_LABELS or not raw_path:
                raise ManifestError(
                    f"{csv_path}: line {number}: expected '<path> <label>' with label 0 (fake) "
                    f"or 1 (real), got {line.strip()!r}"
                )
            label = ORIGINAL_CSV_LABELS[raw_label.strip()]
            rows.append(
                ManifestRow(
                    path=_dataset_relative(raw_path.strip(), root),
                    label=label,
                    source=source,
                    split=split,
                    family=infer_family(source, label),
                )
            )
    return rows
