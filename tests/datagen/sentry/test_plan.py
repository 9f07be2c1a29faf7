"""Planning against the Hub's real layout: which archive feeds which leaf, which members land
where, and which are skipped (leaves the catalog does not keep)."""

from __future__ import annotations

import pytest

from datagen.catalog import HUB_SOURCES, HubSource
from datagen.sentry.build import member_leaf
from datagen.sentry.parts import RemotePart, group_archives
from datagen.sentry.plan import ArchivePlan, archive_leaf, format_plan, plan_source
from rfd_common.errors import UserError
from tests.datagen.fake_hub import SENTRY_LAYOUT


class ListingClient:
    """Just what :func:`plan_source` asks of a Hub client: a listing."""

    repo_id = "InfImagine/FakeImageDataset"
    pinned = "main"

    def __init__(self, paths: list[str]) -> None:
        self.paths = paths
        self.asked: list[str] = []

    def list_files(self, folder: str) -> list[RemotePart]:
        self.asked.append(folder)
        found = [RemotePart(p, 100) for p in self.paths if p.startswith(folder + "/")]
        if not found:
            raise UserError(f"{folder}: not found at this revision")
        return found


def stand_in_listing() -> list[str]:
    return [p for archive in SENTRY_LAYOUT for p in archive.part_paths()]


def by_name(name: str) -> HubSource:
    return next(s for s in HUB_SOURCES if s.name == name)


# The leaf every member of the source's archive feeds; None: the members' paths say.
ARCHIVE_LEAF = {
    "IFv1-CC1M": "IFv1-dpmsolver++-50-1M",
    "SDv15R-CC1M": "SDv15R-dpmsolver-25-1M",
    "stylegan3-80K": None,
    "cogview2-22K": "cogview2-22K",
    "IF-CC95K": None,
    "Midjourneyv5-5K": "Midjourneyv5-5K",
    "SDv15-CC30K": None,
    "SDv21-CC15K": None,
    "stylegan3-60K": None,
}


def test_every_source_plans_against_the_real_layout() -> None:
    client = ListingClient(stand_in_listing())
    plans = {s.name: plan_source(client, s) for s in HUB_SOURCES}
    assert client.asked == [s.hub_path for s in HUB_SOURCES]
    for name, plan in plans.items():
        (archive,) = plan.archives
        assert archive.leaf == ARCHIVE_LEAF[name], name
        assert archive.archive.directory == plan.source.hub_path
        assert plan.ignored == [] and plan.missing_leaves == []
    sd15 = plans["SDv15-CC30K"]
    assert [p.name for p in sd15.kept_parts] == ["SDv15-CC30K.tar.gz.0", "SDv15-CC30K.tar.gz.1"]
    assert sd15.total_parts == 5
    assert sd15.expected_images() == {"SDv15R-dpmsolver-25-15K": 15_000 * 2 // 5}
    assert [p.name for p in plans["SDv21-CC15K"].kept_parts] == ["SDv21-CC15K.tar.gz.0"]
    text = format_plan(list(plans.values()), prefetch=1, keep=False)
    assert "leaves inside the tar: 2 of 5 parts (SDv15-CC30K.tar.gz.0 .." in text


def test_archives_in_subfolders_feed_the_leaf_they_are_named_after() -> None:
    source = by_name("stylegan3-60K")
    folder = source.hub_path
    files = [
        RemotePart(f"{folder}/stylegan3-t-afhqv2-512x512/a.tar.gz.0", 10),
        RemotePart(f"{folder}/stylegan3-r-ffhqu-1024x1024/b.tar.gz.0", 10),  # not kept
    ]
    other, kept = group_archives(files)  # sorted by folder
    assert archive_leaf(source, other) is False
    assert archive_leaf(source, kept) == "stylegan3-t-afhqv2-512x512"


def plan_of(name: str) -> ArchivePlan:
    source = by_name(name)
    (archive,) = group_archives(
        [RemotePart(p, 10) for p in stand_in_listing() if p.startswith(source.hub_path + "/")]
    )
    return ArchivePlan(archive, archive_leaf(source, archive), archive.parts)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "member", "expected"),
    [
        # Leaves only inside the tar: the member's folders say; an unkept leaf is None.
        (
            "SDv15-CC30K",
            "SDv15R-dpmsolver-25-15K/0001.png",
            ("SDv15R-dpmsolver-25-15K", "0001.png"),
        ),
        (
            "SDv15-CC30K",
            "SDv15-dpmsolver-25-15K/0001.png",
            (None, "SDv15-dpmsolver-25-15K/0001.png"),
        ),
        (
            "SDv15-CC30K",
            "./SDv15-CC30K/SDv15R-dpmsolver-25-15K/a/1.png",
            ("SDv15R-dpmsolver-25-15K", "a/1.png"),
        ),
        ("SDv15-CC30K", "0001.png", (None, "0001.png")),
        ("IF-CC95K", "IF-ddim-25-15K/7.png", (None, "IF-ddim-25-15K/7.png")),
        ("IF-CC95K", "IF-ddim-50-15K/7.png", ("IF-ddim-50-15K", "7.png")),
        (
            "stylegan3-60K",
            "stylegan3-r-metfaces-1024x1024/s.png",
            (None, "stylegan3-r-metfaces-1024x1024/s.png"),
        ),
        # The Hub folder is the leaf: every member belongs to it (tar --strip-components 1).
        ("cogview2-22K", "cogview2-22K/1.png", ("cogview2-22K", "1.png")),
        ("cogview2-22K", "images/1.png", ("cogview2-22K", "1.png")),
        ("Midjourneyv5-5K", "1.png", ("Midjourneyv5-5K", "1.png")),
        ("IFv1-CC1M", "IFv1-dpmsolver++-50-1M/00/1.png", ("IFv1-dpmsolver++-50-1M", "00/1.png")),
    ],
)
def test_member_leaf(name: str, member: str, expected: tuple[str | None, str]) -> None:
    assert member_leaf(plan_of(name), by_name(name).leaf_names, member) == expected
