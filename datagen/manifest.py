"""The dataset manifest: ``manifest.csv``, the one index every component reads.

Columns ``path,label,source,split`` and optionally ``family``. ``path`` is relative to the
dataset root (the folder holding the manifest), ``label`` is 0 for real and 1 for fake,
``split`` is ``train`` or ``val``. Rows are written sorted by path so the file is deterministic.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from rfd_common.errors import UserError
from rfd_common.files import atomic_write_text

MANIFEST_NAME = "manifest.csv"
REAL, FAKE = 0, 1
LABEL_NAMES = {REAL: "real", FAKE: "fake"}
SPLITS = ("train", "val")
FAMILIES = ("real", "gan", "diffusion", "autoregressive", "unknown")
REQUIRED_COLUMNS = ("path", "label", "source", "split")
ALL_COLUMNS = (*REQUIRED_COLUMNS, "family")
MAX_REPORTED_ERRORS = 5


class ManifestError(UserError):
    """A manifest that cannot be read or fails validation; the message names file and rows."""


@dataclass(frozen=True, order=True)
class ManifestRow:
    """One image of the dataset."""

    path: str
    label: int
    source: str
    split: str
    family: str | None = None

    @property
    def is_fake(self) -> bool:
        return self.label == FAKE


def _row_problems(row: ManifestRow, root: Path | None, raw_label: str | None = None) -> list[str]:
    """Return the problems of one row (empty when valid).

    ``raw_label`` is the label as written in the file, quoted in the message when it is invalid.
    """
    problems = []
    posix = PurePosixPath(row.path)
    if not row.path:
        problems.append("empty path")
    elif posix.is_absolute() or ".." in posix.parts or "\\" in row.path:
        problems.append(f"path '{row.path}' must be relative to the dataset root, without '..'")
    elif root is not None and not (root / row.path).is_file():
        problems.append(f"missing image '{row.path}' (not found under {root})")
    if row.label not in LABEL_NAMES or isinstance(row.label, bool):
        shown = row.label if raw_label is None else raw_label
        problems.append(f"unknown label '{shown}' (expected 0 = real or 1 = fake)")
    if row.split not in SPLITS:
        problems.append(f"unknown split '{row.split}' (expected one of {', '.join(SPLITS)})")
    if not row.source:
        problems.append("empty source")
    if row.family is not None and row.family not in FAMILIES:
        problems.append(f"unknown family '{row.family}' (expected one of {', '.join(FAMILIES)})")
    return problems


def _raise_if_problems(problems: list[str], origin: str) -> None:
    if not problems:
        return
    shown = problems[:MAX_REPORTED_ERRORS]
    more = len(problems) - len(shown)
    tail = f"\n  ... and {more} more" if more else ""
    raise ManifestError(f"{origin}: invalid manifest:\n  " + "\n  ".join(shown) + tail)


def _rows_problems(
    rows: Sequence[ManifestRow],
    root: Path | None,
    lines: Sequence[int] | None = None,
    raw_labels: Sequence[str] | None = None,
) -> list[tuple[int, str]]:
    """``(line, problem)`` pairs for ``rows``; ``lines`` defaults to header + 1-based order."""
    problems: list[tuple[int, str]] = []
    first_line: dict[str, int] = {}
    first_of_source: dict[tuple[str, int], int] = {}
    for index, row in enumerate(rows):
        line = lines[index] if lines is not None else index + 2
        raw_label = raw_labels[index] if raw_labels is not None else None
        for problem in _row_problems(row, root, raw_label):
            problems.append((line, problem))
        if row.path in first_line:
            problems.append(
                (line, f"duplicate path '{row.path}' (first on line {first_line[row.path]})")
            )
        else:
            first_line[row.path] = line
        first_of_source.setdefault((row.source, row.label), line)
    for (source, label), line in sorted(first_of_source.items(), key=lambda item: item[1]):
        if label == FAKE and (source, REAL) in first_of_source:
            problems.append(
                (
                    line,
                    f"source '{source}' holds both real and fake images (reals from line "
                    f"{first_of_source[(source, REAL)]}); a source holds one class: give the "
                    f"reals their own source name, e.g. '{source}-real'",
                )
            )
    return problems


def validate_rows(
    rows: Sequence[ManifestRow], root: Path | None = None, origin: str = MANIFEST_NAME
) -> None:
    """Check labels, splits, families, duplicate paths and (with ``root``) that files exist.

    ``origin`` names the file in the error message; problems are reported by 1-based line number
    of the CSV file (the header is line 1).
    """
    problems = _rows_problems(rows, root)
    _raise_if_problems([f"line {line}: {problem}" for line, problem in problems], origin)


def _parse_label(text: str) -> int:
    """The integer a label cell holds, or -1 when it is not a plain ASCII integer."""
    text = text.strip()
    digits = text[1:] if text.startswith(("+", "-")) else text
    return int(text) if digits.isascii() and digits.isdigit() else -1


def _manifest_file(path: Path) -> Path:
    """The manifest file ``path`` names (itself, or the manifest of a folder); it must exist."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError(
            f"{path}: manifest not found; build one with `python -m datagen.build_manifest` "
            "or generate the demo dataset with `python -m datagen.make_demo_dataset`"
        )
    return path


def _read_text(path: Path) -> str:
    try:
        # utf-8-sig: a byte-order mark (spreadsheet exports) must not hide the first column.
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{path}: not a UTF-8 text file ({exc.reason})") from exc
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read the manifest ({exc.strerror or exc})") from exc


def _check_header(reader: csv.DictReader, path: Path) -> None:
    """Every required column, no unknown or repeated one; else :class:`ManifestError`."""
    try:
        header = reader.fieldnames or []
    except csv.Error as exc:
        raise ManifestError(f"{path}: line 1: cannot parse the header ({exc})") from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ManifestError(
            f"{path}: line 1: missing column(s) {', '.join(missing)}; "
            f"expected header {','.join(REQUIRED_COLUMNS)}[,family]"
        )
    unknown = [c for c in header if c not in ALL_COLUMNS]
    if unknown:
        raise ManifestError(f"{path}: line 1: unknown column(s) {', '.join(unknown)}")
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise ManifestError(f"{path}: line 1: repeated column(s) {', '.join(repeated)}")


@dataclass
class _ParsedRecords:
    """The rows of a manifest file, each with its line and label as written; malformed lines."""

    rows: list[ManifestRow] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    raw_labels: list[str] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)

    def add(self, record: dict[str, str], line: int) -> None:
        family = (record.get("family") or "").strip() or None
        self.rows.append(
            ManifestRow(
                path=record["path"].strip(),
                label=_parse_label(record["label"]),
                source=record["source"].strip(),
                split=record["split"].strip(),
                family=family,
            )
        )
        self.lines.append(line)
        self.raw_labels.append(record["label"].strip())


def _parse_records(reader: csv.DictReader, path: Path) -> _ParsedRecords:
    """Every record after the header; a CSV syntax error raises :class:`ManifestError`."""
    parsed = _ParsedRecords()
    records = iter(reader)
    while True:
        try:
            record = next(records)
        except StopIteration:
            break
        except csv.Error as exc:
            raise ManifestError(f"{path}: line {reader.line_num}: cannot parse ({exc})") from exc
        # DictReader skips blank lines, so count lines with the reader, not by enumeration.
        line = reader.line_num
        if None in record or any(value is None for value in record.values()):
            parsed.problems.append((line, "wrong number of fields"))
            continue
        parsed.add(record, line)
    return parsed


def read_manifest(path: Path, check_files: bool = True) -> list[ManifestRow]:
    """Read and validate ``path`` (a manifest file, or a dataset folder holding one).

    With ``check_files`` every listed image must exist under the manifest's folder.
    Raises :class:`ManifestError` naming the file and the first offending lines.
    """
    path = _manifest_file(path)
    reader = csv.DictReader(io.StringIO(_read_text(path)))
    _check_header(reader, path)
    parsed = _parse_records(reader, path)
    root = path.parent if check_files else None
    problems = parsed.problems
    problems += _rows_problems(parsed.rows, root, lines=parsed.lines, raw_labels=parsed.raw_labels)
    problems.sort(key=lambda item: item[0])
    _raise_if_problems([f"line {line}: {problem}" for line, problem in problems], str(path))
    return parsed.rows


def format_manifest(rows: Iterable[ManifestRow]) -> str:
    """Render rows as manifest CSV text, sorted by path; ``family`` only when some row has one."""
    rows = sorted(rows, key=lambda r: r.path)
    with_family = any(r.family is not None for r in rows)
    columns = ALL_COLUMNS if with_family else REQUIRED_COLUMNS
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for r in rows:
        values = [r.path, r.label, r.source, r.split]
        if with_family:
            values.append(r.family or "unknown")
        writer.writerow(values)
    return buffer.getvalue()


def write_manifest(rows: Iterable[ManifestRow], path: Path, check_files: bool = True) -> Path:
    """Validate ``rows`` and write them to ``path`` (a file, or a folder) atomically.

    Returns the manifest file's path.
    """
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    rows = sorted(rows, key=lambda r: r.path)
    validate_rows(rows, root=path.parent if check_files else None, origin=str(path))
    atomic_write_text(path, format_manifest(rows))
    return path


def select(
    rows: Iterable[ManifestRow],
    split: str | None = None,
    label: int | None = None,
    sources: Iterable[str] | None = None,
) -> list[ManifestRow]:
    """Rows of one split, label and/or set of sources."""
    if split is not None and split not in SPLITS:
        raise UserError(f"unknown split '{split}' (expected one of {', '.join(SPLITS)})")
    wanted = set(sources) if sources is not None else None
    return [
        r
        for r in rows
        if (split is None or r.split == split)
        and (label is None or r.label == label)
        and (wanted is None or r.source in wanted)
    ]


def sample_per_source(
    rows: Iterable[ManifestRow], per_source: int | None, seed: int = 0
) -> list[ManifestRow]:
    """Up to ``per_source`` rows of every source (all when None or fewer), seeded; path order."""
    rows = sorted(rows)
    if per_source is None:
        return rows
    rng = random.Random(seed)
    kept: list[ManifestRow] = []
    for source in sorted({r.source for r in rows}):
        group = [r for r in rows if r.source == source]
        kept += group if len(group) <= per_source else rng.sample(group, per_source)
    return sorted(kept)


def summarize(rows: Iterable[ManifestRow]) -> dict[str, dict[str, dict[str, int]]]:
    """Counts per split, source and label: ``{split: {source: {"real": n, "fake": m}}}``."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for r in rows:
        per_source = out.setdefault(r.split, {}).setdefault(r.source, {"real": 0, "fake": 0})
        per_source[LABEL_NAMES[r.label]] += 1
    return {s: dict(sorted(v.items())) for s, v in sorted(out.items())}
