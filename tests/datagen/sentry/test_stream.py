"""datagen.sentry.stream: one reader over split archive parts, a clean stop at a cut, unsafe names
refused, a size cap per member."""

from __future__ import annotations

import gzip
import io
import tarfile
import tracemalloc
import zlib
from pathlib import Path

import pytest

from datagen.limits import MAX_MEMBER_BYTES
from datagen.sentry.stream import (
    ChainedParts,
    CorruptArchiveError,
    GunzipReader,
    StreamStats,
    is_safe_member_name,
    iter_members,
)
from tests.datagen.fake_hub import noise_png, split_bytes, tar_gz

MEMBERS = [(f"leaf/{i:03d}.png", noise_png(i, (24 + i, 20))) for i in range(10)]


def walk(
    data: bytes,
    folder: Path,
    pieces: int = 1,
    compressed: bool = True,
    max_member_bytes: int | None = MAX_MEMBER_BYTES,
) -> tuple[list[tuple[str, bytes]], StreamStats]:
    """Write ``data`` as ``pieces`` part files, stream them, return members and stats."""
    paths = []
    for i, piece in enumerate(split_bytes(data, pieces)):
        path = folder / f"part.{i}"
        path.write_bytes(piece)
        paths.append(path)
    stats = StreamStats()
    reader = GunzipReader(ChainedParts(iter(paths)), compressed=compressed)
    members = [
        (m.name, m.data) for m in iter_members(reader, stats, max_member_bytes=max_member_bytes)
    ]
    return members, stats


def expected_after_cut(
    archive: bytes, cut: int, infos: list[tarfile.TarInfo]
) -> tuple[list[str], int]:
    """Oracle: members whose data lies within the decompressed prefix, and the partial count."""
    available = len(zlib.decompressobj(wbits=31).decompress(archive[:cut]))
    whole = [i.name for i in infos if i.offset_data + i.size <= available]
    partial = int(any(i.offset < available < i.offset_data + i.size for i in infos))
    return whole, partial


def test_parts_read_as_one_stream_give_every_member(tmp_path: Path) -> None:
    archive = tar_gz(MEMBERS)
    for pieces in (1, 3, 11):
        members, stats = walk(archive, tmp_path, pieces)
        assert members == MEMBERS
        assert not stats.truncated and stats.partial == 0


def _clean_cuts(archive: bytes, infos: list[tarfile.TarInfo]) -> list[int]:
    """Compressed lengths that end inside the padding after a member's data (binary search)."""
    cuts = []
    for info in infos:
        target = info.offset_data + info.size + 1
        if target >= info.offset_data + -(-info.size // 512) * 512:
            continue  # no padding after this member
        low, high = 0, len(archive)
        while low < high:
            middle = (low + high) // 2
            if len(zlib.decompressobj(wbits=31).decompress(archive[:middle])) >= target:
                high = middle
            else:
                low = middle + 1
        cuts.append(low)
    return cuts


def test_every_cut_stops_at_the_last_whole_member(tmp_path: Path) -> None:
    archive = tar_gz(MEMBERS)
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(archive))) as t:
        infos = t.getmembers()
    spread = list(range(200, len(archive), len(archive) // 80))
    seen_partial = seen_clean = 0
    for cut in [*spread, *_clean_cuts(archive, infos)]:
        whole, partial = expected_after_cut(archive, cut, infos)
        members, stats = walk(archive[:cut], tmp_path, pieces=3)
        assert [name for name, _ in members] == whole, cut
        assert all(data == dict(MEMBERS)[name] for name, data in members)
        assert stats.partial == partial, cut
        assert stats.truncated or len(whole) == len(MEMBERS), cut
        seen_partial += partial
        seen_clean += 1 - partial
    assert seen_partial > 10 and seen_clean > 5  # both kinds of cut were exercised


def test_a_cut_inside_a_header_counts_one_partial_member(tmp_path: Path) -> None:
    raw = gzip.decompress(tar_gz(MEMBERS))
    with tarfile.open(fileobj=io.BytesIO(raw)) as t:
        third = t.getmembers()[2]
    cut_tar = raw[: third.offset + 100]  # 100 bytes into the third header
    cut = gzip.compress(cut_tar)[:-8]  # drop the trailer: a stream that ends early
    members, stats = walk(cut, tmp_path, pieces=2)
    assert [n for n, _ in members] == [MEMBERS[0][0], MEMBERS[1][0]]
    assert stats.truncated and stats.partial == 1


def test_unsafe_names_links_and_folders_are_not_yielded(tmp_path: Path) -> None:
    link = tarfile.TarInfo("leaf/link.png")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    folder = tarfile.TarInfo("leaf/sub")
    folder.type = tarfile.DIRTYPE
    archive = tar_gz(
        [*MEMBERS[:2], ("../evil.png", b"x"), ("leaf/../../evil2.png", b"y")], [link, folder]
    )
    members, stats = walk(archive, tmp_path)
    assert [n for n, _ in members] == [MEMBERS[0][0], MEMBERS[1][0]]
    assert stats.unsafe == ["../evil.png", "leaf/../../evil2.png"]
    assert stats.not_files == 2


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("a/b.png", True),
        ("./a/b.png", True),
        ("../evil.png", False),
        ("a/../../x.png", False),
        ("/abs.png", False),
        ("a\\..\\x.png", False),
        ("C:/x.png", False),
        ("", False),
    ],
)
def test_is_safe_member_name(name: str, safe: bool) -> None:
    assert is_safe_member_name(name) is safe


def test_plain_tar_and_concatenated_gzip_members(tmp_path: Path) -> None:
    raw = gzip.decompress(tar_gz(MEMBERS))
    members, stats = walk(raw, tmp_path, pieces=4, compressed=False)
    assert members == MEMBERS and not stats.truncated
    two = gzip.compress(raw[:5000]) + gzip.compress(raw[5000:])
    members, stats = walk(two, tmp_path, pieces=3)
    assert members == MEMBERS and not stats.truncated


def test_a_member_over_the_cap_is_refused_unread_and_the_next_ones_arrive(
    tmp_path: Path,
) -> None:
    """The cap is checked on the header's size: the member is listed, its data skipped in small
    reads (the peak memory stays far below its size), and the stream goes on."""
    big = bytes(12 << 20)  # 12 MiB of zeros: a tiny archive, a huge member
    cap = 64 << 10
    at_cap = ("leaf/at-cap.png", b"x" * cap)
    archive = tar_gz([MEMBERS[0], ("leaf/huge.png", big), MEMBERS[1], at_cap, MEMBERS[2]])
    del big
    tracemalloc.start()
    try:
        members, stats = walk(archive, tmp_path, pieces=3, max_member_bytes=cap)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [n for n, _ in members] == [MEMBERS[0][0], MEMBERS[1][0], at_cap[0], MEMBERS[2][0]]
    assert members[1:2] == [MEMBERS[1]]  # the bytes after the skipped member are intact
    assert stats.oversized == [("leaf/huge.png", 12 << 20)]
    assert not stats.truncated and stats.partial == 0
    assert peak < 6 << 20, peak  # never read whole (about 2 MiB: one inflated chunk)
    # Without a cap (None) it is read; the default cap is 64 MiB.
    members, stats = walk(archive, tmp_path, max_member_bytes=None)
    assert len(members) == 5 and stats.oversized == []
    assert MAX_MEMBER_BYTES == 64 << 20


def test_a_stream_cut_inside_a_refused_member_ends_cleanly(tmp_path: Path) -> None:
    archive = tar_gz([MEMBERS[0], ("leaf/huge.png", bytes(4 << 20)), MEMBERS[1]])
    cut = archive[: len(archive) // 2]  # inside the zeros
    members, stats = walk(cut, tmp_path, pieces=2, max_member_bytes=1 << 16)
    assert [n for n, _ in members] == [MEMBERS[0][0]]
    assert stats.oversized == [("leaf/huge.png", 4 << 20)] and stats.truncated


def test_damaged_data_is_an_error_not_a_cut(tmp_path: Path) -> None:
    archive = bytearray(tar_gz(MEMBERS))
    middle = len(archive) // 2
    archive[middle : middle + 64] = bytes(64)
    with pytest.raises(CorruptArchiveError):
        walk(bytes(archive), tmp_path)
    with pytest.raises(CorruptArchiveError, match="not gzip"):
        walk(b"PK\x03\x04 this is a zip" * 10, tmp_path)
