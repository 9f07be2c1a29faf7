"""Read split tar(.gz) parts as one stream, without concatenating them on disk.

``ChainedParts`` reads part files one after the other (and reports each one consumed, so it
can be deleted); ``GunzipReader`` decompresses, telling a stream that ended early (the first
k parts of an archive) from a complete one; ``iter_members`` walks the tar stream and stops
cleanly at a truncated end: every whole member is yielded, the partial one is dropped and
counted. A member larger than ``max_member_bytes`` is refused from its header's size: its data
is skipped in small reads, never held in memory.
"""

from __future__ import annotations

import io
import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from datagen.limits import MAX_MEMBER_BYTES
from rfd_common.errors import UserError

_CHUNK = 1 << 20
_TAIL = 1 << 16
_GZIP_MAGIC = b"\x1f\x8b"


class CorruptArchiveError(UserError):
    """An archive whose data is damaged (not merely cut short)."""


class ChainedParts(io.RawIOBase):
    """The files from ``paths`` read as one stream; ``on_done(path)`` after each is read."""

    def __init__(
        self, paths: Iterator[Path], on_done: Callable[[Path], None] | None = None
    ) -> None:
        self._paths = paths
        self._on_done = on_done
        self._file: io.BufferedReader | None = None
        self._path: Path | None = None
        self.bytes_read = 0
        self.parts_done = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def, override]
        while True:
            if self._file is None:
                path = next(self._paths, None)
                if path is None:
                    return 0
                self._path = Path(path)
                self._file = open(self._path, "rb")  # noqa: SIM115 - closed when consumed
            n = self._file.readinto(buffer)
            if n:
                self.bytes_read += n
                return n
            self._file.close()
            self._file = None
            self.parts_done += 1
            if self._on_done is not None and self._path is not None:
                self._on_done(self._path)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        super().close()


class GunzipReader(io.RawIOBase):
    """Decompress a gzip stream (one or more members) read from ``raw``.

    At the end of ``raw``, ``truncated`` tells whether the stream stopped inside a gzip member.
    Damaged data raises :class:`CorruptArchiveError`. ``tail`` holds the last bytes produced.
    """

    def __init__(self, raw: io.RawIOBase, compressed: bool = True, name: str = "archive") -> None:
        self._raw = raw
        self._compressed = compressed
        self._name = name
        self._inflate = zlib.decompressobj(wbits=31) if compressed else None
        self._pending = b""
        self._buffer = b""
        # A plain tar has no framing of its own: the input ending while the tar walk still
        # reads counts as a cut.
        self._in_member = not compressed
        self._eof = False
        self.truncated = False
        self.produced = 0
        self.tail = b""

    def readable(self) -> bool:
        return True

    def _fill(self) -> None:
        """Decompress until some output is buffered or the input ends."""
        while not self._buffer and not self._eof:
            data = self._pending or self._raw.read(_CHUNK)
            self._pending = b""
            if not data:
                self._eof = True
                self.truncated = self._in_member
                return
            if self._inflate is None:
                self._buffer = data
                return
            if not self._in_member:
                if not data.strip(b"\0"):
                    continue  # zero padding after the last member
                if not data.startswith(_GZIP_MAGIC) and len(data) >= 2:
                    raise CorruptArchiveError(f"{self._name}: not gzip data")
                self._in_member = True
            try:
                out = self._inflate.decompress(data, _CHUNK)
            except zlib.error as exc:
                raise CorruptArchiveError(f"{self._name}: damaged compressed data ({exc})") from exc
            self._pending = self._inflate.unconsumed_tail
            if self._inflate.eof:
                self._pending = self._inflate.unused_data + self._pending
                self._inflate = zlib.decompressobj(wbits=31)
                self._in_member = False
            self._buffer = out

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def, override]
        self._fill()
        n = min(len(buffer), len(self._buffer))
        if n == 0:
            return 0
        chunk = self._buffer[:n]
        buffer[:n] = chunk
        self._buffer = self._buffer[n:]
        self.produced += n
        self.tail = (self.tail + chunk)[-_TAIL:]
        return n

    def drain(self) -> None:
        """Read to the end of the input (checks the gzip trailer, consumes the last part)."""
        while self.read(_CHUNK):
            pass


@dataclass
class StreamStats:
    """What walking one archive stream met besides the members it yielded."""

    members: int = 0
    not_files: int = 0
    unsafe: list[str] = field(default_factory=list)
    partial: int = 0
    truncated: bool = False
    oversized: list[tuple[str, int]] = field(default_factory=list)


@dataclass(frozen=True)
class Member:
    """A regular file of the tar stream and its bytes."""

    name: str
    data: bytes


def is_safe_member_name(name: str) -> bool:
    """False for absolute paths, ``..`` components, backslashes and drive letters."""
    if not name or name.startswith(("/", "\\")) or "\\" in name or "\0" in name:
        return False
    parts = [p for p in name.split("/") if p not in ("", ".")]
    return bool(parts) and ".." not in parts and ":" not in parts[0]


def iter_members(
    reader: GunzipReader,
    stats: StreamStats,
    wanted: Callable[[str], bool] = lambda name: True,
    max_member_bytes: int | None = MAX_MEMBER_BYTES,
) -> Iterator[Member]:
    """Yield the regular-file members of the tar stream ``reader`` whose name is ``wanted``.

    Members with unsafe names are never yielded (listed in ``stats.unsafe``). A wanted member
    whose header states more than ``max_member_bytes`` (None: no cap) is refused unread
    (listed in ``stats.oversized``); the tar reader then skips its data in small reads. A
    stream cut short ends the iteration: the member it cut is counted in ``stats.partial``.
    """
    try:
        archive = tarfile.open(fileobj=reader, mode="r|")  # type: ignore[call-overload]  # noqa: SIM115
    except tarfile.ReadError as exc:
        if reader.truncated:
            stats.truncated = True
            stats.partial += 1 if reader.produced else 0
            return
        raise CorruptArchiveError(f"not a tar stream ({exc})") from exc
    with archive:
        while True:
            try:
                info = archive.next()
            except tarfile.ReadError as exc:
                if reader.truncated:  # cut in the padding after a member, or in a header
                    stats.partial += int(_cut_inside_header(reader, archive.offset))
                    break
                raise CorruptArchiveError(f"damaged tar stream ({exc})") from exc
            if info is None:
                if reader.truncated and _cut_inside_header(reader, archive.offset):
                    stats.partial += 1
                break
            stats.members += 1
            if not info.isreg():
                stats.not_files += 1
                continue
            if not is_safe_member_name(info.name):
                stats.unsafe.append(info.name)
                continue
            if not wanted(info.name):
                continue
            if max_member_bytes is not None and info.size > max_member_bytes:
                stats.oversized.append((info.name, info.size))
                continue
            handle = archive.extractfile(info)
            try:
                data = handle.read() if handle is not None else b""
            except tarfile.ReadError as exc:
                if reader.truncated:
                    stats.partial += 1
                    break
                raise CorruptArchiveError(f"damaged tar stream ({exc})") from exc
            if len(data) != info.size:
                stats.partial += 1
                break
            yield Member(info.name, data)
    stats.truncated = reader.truncated


def _cut_inside_header(reader: GunzipReader, offset: int) -> bool:
    """After a truncated stream ended the walk: did non-zero bytes follow the last member?"""
    leftover = reader.produced - offset
    if leftover <= 0:
        return False
    return bool(reader.tail[-min(leftover, len(reader.tail)) :].strip(b"\0"))
