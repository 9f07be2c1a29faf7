"""Split tar archives on the Hub: group ``X.tar.gz.0``, ``X.tar.gz.00``... into archives.

Parts are ordered by their integer suffix, never by listing order (``.10`` comes after
``.9``); a single un-numbered ``X.tar.gz`` is an archive of one part. A gap or a repeated
index is an error: such a stream cannot be decompressed past the hole.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath

from rfd_common.errors import UserError

_ARCHIVE = re.compile(r"^(?P<base>.+?\.(?:tar\.gz|tgz|tar))(?:\.(?P<index>\d+))?$")


@dataclass(frozen=True)
class RemotePart:
    """One file on the Hub: its path in the repo, size, LFS sha256 (when known), part index."""

    path: str
    size: int
    sha256: str | None = None
    index: int | None = None

    @property
    def name(self) -> str:
        return PurePosixPath(self.path).name


@dataclass(frozen=True)
class Archive:
    """The ordered parts of one (possibly split) archive; ``directory`` is its Hub folder."""

    directory: str
    base: str
    parts: tuple[RemotePart, ...]

    @property
    def stem(self) -> str:
        """The archive's name without ``.tar.gz``/``.tgz``/``.tar``."""
        for suffix in (".tar.gz", ".tgz", ".tar"):
            if self.base.endswith(suffix):
                return self.base[: -len(suffix)]
        return self.base

    @property
    def compressed(self) -> bool:
        return not self.base.endswith(".tar")

    @property
    def size(self) -> int:
        return sum(p.size for p in self.parts)


def parse_part_name(name: str) -> tuple[str, int | None] | None:
    """``(archive base name, part index or None)`` for an archive file name, else None."""
    match = _ARCHIVE.match(name)
    if match is None:
        return None
    index = match.group("index")
    return match.group("base"), int(index) if index is not None else None


def group_archives(files: Iterable[RemotePart]) -> list[Archive]:
    """Group archive files into archives with parts in integer-suffix order.

    Other files (README, CSV, hidden files) are ignored. Archives are sorted by folder and name.
    """
    groups: dict[tuple[str, str], list[RemotePart]] = {}
    for f in files:
        path = PurePosixPath(f.path)
        if path.name.startswith("."):
            continue
        parsed = parse_part_name(path.name)
        if parsed is None:
            continue
        base, index = parsed
        part = RemotePart(f.path, f.size, f.sha256, index)
        groups.setdefault((str(path.parent), base), []).append(part)
    archives = []
    for (directory, base), parts in sorted(groups.items()):
        numbered = [p for p in parts if p.index is not None]
        if numbered and len(numbered) != len(parts):
            raise UserError(
                f"{directory}/{base}: both an un-numbered archive and numbered parts exist; "
                "cannot tell which is the archive"
            )
        if not numbered:
            archives.append(Archive(directory, base, tuple(parts)))
            continue
        numbered.sort(key=lambda p: p.index)  # type: ignore[arg-type, return-value]
        indices = [p.index for p in numbered]
        if len(set(indices)) != len(indices):
            raise UserError(f"{directory}/{base}: a part index appears twice ({indices})")
        first = 0 if indices[0] == 0 else 1
        missing = sorted(set(range(first, indices[-1] + 1)) - set(indices))  # type: ignore[operator]
        if missing:
            shown = ", ".join(f".{i}" for i in missing[:5])
            raise UserError(
                f"{directory}/{base}: part(s) {shown} missing; the stream cannot be read past a gap"
            )
        archives.append(Archive(directory, base, tuple(numbered)))
    return archives


def format_part_range(parts: tuple[RemotePart, ...]) -> str:
    """``X.tar.gz.00 .. X.tar.gz.03`` (or the single name)."""
    if not parts:
        return "-"
    if len(parts) == 1:
        return parts[0].name
    return f"{parts[0].name} .. {parts[-1].name}"
