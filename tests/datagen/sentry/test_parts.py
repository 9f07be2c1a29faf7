"""Split tar parts: naming, integer-suffix order, grouping, gaps."""

from __future__ import annotations

import random

import pytest

from datagen.sentry.parts import RemotePart, group_archives, parse_part_name
from rfd_common.errors import UserError


def files(*names: str) -> list[RemotePart]:
    return [RemotePart(name, 10 + i) for i, name in enumerate(names)]


@pytest.mark.parametrize(
    ("name", "parsed"),
    [
        ("X.tar.gz.0", ("X.tar.gz", 0)),
        ("X.tar.gz.00", ("X.tar.gz", 0)),
        ("X.tar.gz.17", ("X.tar.gz", 17)),
        ("Midjourneyv5-5K.tar.gz", ("Midjourneyv5-5K.tar.gz", None)),
        ("a.b.tgz.3", ("a.b.tgz", 3)),
        ("plain.tar", ("plain.tar", None)),
        ("README.md", None),
        ("meta.csv", None),
        ("X.tar.gz.part", None),
    ],
)
def test_parse_part_name(name: str, parsed: tuple[str, int | None] | None) -> None:
    assert parse_part_name(name) == parsed


@pytest.mark.parametrize("width", [1, 2])
def test_parts_are_ordered_by_integer_suffix_not_listing(width: int) -> None:
    names = [f"d/X.tar.gz.{i:0{width}d}" for i in range(13)]
    shuffled = names[:]
    random.Random(0).shuffle(shuffled)
    (archive,) = group_archives(files(*shuffled))
    assert [p.index for p in archive.parts] == list(range(13))
    assert [p.path for p in archive.parts] == names
    if width == 1:  # the premise: a listing in name order would put .10 before .2
        assert sorted(names) != names


def test_groups_per_folder_and_name_and_ignores_other_files() -> None:
    archives = group_archives(
        files(
            "a/A.tar.gz.1",
            "a/A.tar.gz.0",
            "a/B.tar.gz",
            "a/.gitattributes",
            "a/README.md",
            "b/A.tar.gz.00",
        )
    )
    assert [(a.directory, a.base, len(a.parts)) for a in archives] == [
        ("a", "A.tar.gz", 2),
        ("a", "B.tar.gz", 1),
        ("b", "A.tar.gz", 1),
    ]
    assert archives[0].stem == "A" and archives[0].compressed
    assert archives[0].size == sum(p.size for p in archives[0].parts)


def test_a_missing_part_or_a_repeated_index_is_an_error() -> None:
    with pytest.raises(UserError, match=r"\.2 missing"):
        group_archives(files("d/X.tar.gz.0", "d/X.tar.gz.1", "d/X.tar.gz.3"))
    with pytest.raises(UserError, match="appears twice"):
        group_archives(files("d/X.tar.gz.0", "d/X.tar.gz.00", "d/X.tar.gz.1"))
    with pytest.raises(UserError, match="un-numbered"):
        group_archives(files("d/X.tar.gz", "d/X.tar.gz.0"))
