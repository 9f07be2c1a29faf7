"""The source catalog matches DESIGN section 2; selection and fractions from the command line."""

from __future__ import annotations

import pytest

from datagen.catalog import (
    HUB_SOURCES,
    REAL_SOURCES,
    format_catalog,
    kept_parts,
    leaf_labels,
    select_hub_sources,
    select_real_sources,
)
from datagen.manifest import FAKE, FAMILIES, REAL
from rfd_common.errors import UserError


def by_name(name: str):  # type: ignore[no-untyped-def]
    return next(s for s in HUB_SOURCES if s.name == name)


def test_train_fakes_match_the_design() -> None:
    train = {s.hub_folder: s for s in HUB_SOURCES if s.split == "train"}
    assert set(train) == {
        "IFv1-CC1M/IFv1-dpmsolver++-50-1M",
        "SDv15R-CC1M/SDv15R-dpmsolver-25-1M",
        "stylegan3-80K",
    }
    assert train["IFv1-CC1M/IFv1-dpmsolver++-50-1M"].fraction == 0.08
    assert train["SDv15R-CC1M/SDv15R-dpmsolver-25-1M"].fraction == 0.075
    assert train["stylegan3-80K"].fraction == 1.0
    assert set(train["stylegan3-80K"].leaf_names) == {
        f"stylegan3-{k}-{d}"
        for k in ("r", "t")
        for d in ("afhqv2-512x512", "ffhqu-1024x1024", "metfaces-1024x1024")
    }


def test_val_fakes_match_the_design() -> None:
    val = [s for s in HUB_SOURCES if s.split == "val"]
    assert {s.fraction for s in val} == {0.5}
    leaves = {leaf for s in val for leaf in s.leaf_names}
    assert leaves == {
        "cogview2-22K",
        "IF-ddim-50-15K",
        "IF-ddpm-50-15K",
        "IF-dpmsolver++-10-15K",
        "IF-dpmsolver++-25-15K",
        "Midjourneyv5-5K",
        "SDv15R-dpmsolver-25-15K",
        "SDv2-dpmsolver-25-10K",
        "stylegan3-r-afhqv2-512x512",
        "stylegan3-t-afhqv2-512x512",
        "stylegan3-t-ffhqu-1024x1024",
        "stylegan3-t-metfaces-1024x1024",
    }
    assert by_name("cogview2-22K").family == "autoregressive"
    assert by_name("stylegan3-60K").family == "gan"


def test_reals_match_the_design() -> None:
    real = {(s.split, s.leaf) for s in REAL_SOURCES}
    assert real == {
        ("train", "cc3m"),
        ("train", "ffhq"),
        ("train", "afhq-v2"),
        ("val", "cc3m"),
        ("val", "celeba-hq"),
    }
    assert all(s.label == REAL and s.family == "real" for s in REAL_SOURCES)
    assert all(s.label == FAKE and s.family in FAMILIES for s in HUB_SOURCES)


def test_leaf_folders_keep_the_original_layout() -> None:
    assert (
        by_name("IFv1-CC1M").leaf_dir("IFv1-dpmsolver++-50-1M")
        == "ImageData/train/IFv1-CC1M/IFv1-dpmsolver++-50-1M"
    )
    assert (
        by_name("stylegan3-60K").leaf_dir("stylegan3-t-metfaces-1024x1024")
        == "ImageData/val/stylegan3-60K/stylegan3-t-metfaces-1024x1024"
    )
    assert by_name("Midjourneyv5-5K").leaf_dir("Midjourneyv5-5K") == "ImageData/val/Midjourneyv5-5K"
    # Every leaf folder belongs to exactly one source: a rerun replaces only its own rows.
    prefixes = [p for s in HUB_SOURCES for p in s.prefixes()]
    prefixes += [p for s in REAL_SOURCES for p in s.prefixes()]
    assert len(prefixes) == len(set(prefixes))
    assert all(not a.startswith(b) for a in prefixes for b in prefixes if a != b)


# Source -> (Hub folder holding the tar parts, leaves kept from inside the tar): DESIGN
# section 2, "Hub layout". Only the two 1M train sets keep their parts in a leaf folder.
HUB_LAYOUT = {
    "IFv1-CC1M": ("IFv1-CC1M/IFv1-dpmsolver++-50-1M", ("IFv1-dpmsolver++-50-1M",)),
    "SDv15R-CC1M": ("SDv15R-CC1M/SDv15R-dpmsolver-25-1M", ("SDv15R-dpmsolver-25-1M",)),
    "stylegan3-80K": ("stylegan3-80K", None),
    "cogview2-22K": ("cogview2-22K", ("cogview2-22K",)),
    "IF-CC95K": ("IF-CC95K", None),
    "Midjourneyv5-5K": ("Midjourneyv5-5K", ("Midjourneyv5-5K",)),
    "SDv15-CC30K": ("SDv15-CC30K", ("SDv15R-dpmsolver-25-15K",)),
    "SDv21-CC15K": ("SDv21-CC15K", ("SDv2-dpmsolver-25-10K",)),
    "stylegan3-60K": ("stylegan3-60K", None),
}


def test_entries_name_the_hub_folder_and_the_leaves_kept_inside_the_tar() -> None:
    assert [s.name for s in HUB_SOURCES] == list(HUB_LAYOUT)
    for s in HUB_SOURCES:
        hub_folder, leaves = HUB_LAYOUT[s.name]
        assert s.hub_folder == hub_folder, s.name
        assert s.hub_path == f"ImageData/{s.split}/{hub_folder}"
        assert s.folder == s.name  # the source folder, on the Hub and on disk
        if leaves is not None:
            assert s.leaf_names == leaves, s.name
    sd15 = by_name("SDv15-CC30K")
    assert sd15.folder_leaf is None  # its tars hold two leaves: the members' paths say
    assert by_name("cogview2-22K").folder_leaf == "cogview2-22K"
    assert by_name("IFv1-CC1M").folder_leaf == "IFv1-dpmsolver++-50-1M"
    # On disk the original's layout, whatever the Hub folder.
    assert sd15.leaf_dir("SDv15R-dpmsolver-25-15K") == (
        "ImageData/val/SDv15-CC30K/SDv15R-dpmsolver-25-15K"
    )
    assert by_name("SDv21-CC15K").leaf_dir("SDv2-dpmsolver-25-10K") == (
        "ImageData/val/SDv21-CC15K/SDv2-dpmsolver-25-10K"
    )
    assert by_name("cogview2-22K").prefixes() == ("ImageData/val/cogview2-22K/",)
    assert by_name("SDv15R-CC1M").prefixes() == (
        "ImageData/train/SDv15R-CC1M/SDv15R-dpmsolver-25-1M/",
    )


def test_format_catalog_shows_hub_folder_and_kept_leaves() -> None:
    text = format_catalog()
    assert "SDv15-CC30K -> SDv15R-dpmsolver-25-15K" in text
    assert "IFv1-CC1M/IFv1-dpmsolver++-50-1M -> IFv1-dpmsolver++-50-1M" in text


@pytest.mark.parametrize(
    ("total", "fraction", "kept"),
    [
        (1, 0.5, 1),
        (2, 0.5, 1),
        (3, 0.5, 1),
        (12, 0.5, 6),
        (12, 0.08, 1),
        (50, 0.08, 4),
        (7, 1.0, 7),
        (40, 0.075, 3),
    ],
)
def test_kept_parts_rounds_down_keeps_one_and_whole_single_archives(
    total: int, fraction: float, kept: int
) -> None:
    assert kept_parts(total, fraction) == kept


def test_select_by_name_split_and_fraction_override() -> None:
    assert [s.name for s in select_hub_sources(["val"])] == [
        s.name for s in HUB_SOURCES if s.split == "val"
    ]
    chosen = select_hub_sources(["stylegan3-80K", "IF-CC95K"], train_fraction=0.25)
    assert [(s.name, s.fraction) for s in chosen] == [("stylegan3-80K", 0.25), ("IF-CC95K", 0.5)]
    assert len(select_hub_sources(None)) == len(HUB_SOURCES)


def test_unknown_source_names_the_closest_match() -> None:
    with pytest.raises(UserError, match="did you mean 'stylegan3-80K'"):
        select_hub_sources(["stylegan3-80k"])
    with pytest.raises(UserError, match="--train_fraction"):
        select_hub_sources(None, train_fraction=1.5)
    with pytest.raises(UserError, match="did you mean 'celeba-hq'"):
        select_real_sources(["celeba"])


def test_real_selection_groups_and_subset() -> None:
    sources, subset = select_real_sources(["cc3m", "kaggle-subset"])
    assert [s.name for s in sources] == ["cc3m-train", "cc3m-val"] and subset
    sources, subset = select_real_sources(None)
    assert len(sources) == len(REAL_SOURCES) and not subset


def test_leaf_labels_cover_every_leaf() -> None:
    labels = leaf_labels()
    assert labels[("train", "cc3m")] == (REAL, "real")
    assert labels[("val", "IF-ddim-50-15K")] == (FAKE, "diffusion")
    assert len(labels) == sum(len(s.leaves) for s in HUB_SOURCES) + len(REAL_SOURCES)
