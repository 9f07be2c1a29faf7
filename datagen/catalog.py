"""The one table of every source of the paper's dataset (DESIGN section 2).

Fake sources come from the Sentry / Fake2M dataset on the Hugging Face Hub
(``InfImagine/FakeImageDataset``): each is a folder under ``ImageData/<split>/`` holding split
``.tar.gz`` archives, of which a fraction of the tar parts is kept; the leaf folders of images
mostly exist only inside the tar, so an entry names the Hub folder and, separately, the leaves
kept from inside its archives. Real sources come from
CC3M (img2dataset over the Conceptual Captions TSVs), Kaggle (FFHQ-256, CelebA-HQ-256) and a
public zip (AFHQv2). The ready subset on Kaggle is listed too.

Image counts are what the dataset cards and folder names state; they only feed estimates
(``--dry_run``), never a check.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from datagen.manifest import FAKE, REAL
from rfd_common.errors import UserError

HUB_REPO_ID = "InfImagine/FakeImageDataset"
HUB_IMAGE_ROOT = "ImageData"
KAGGLE_SUBSET_SLUG = "carrotpeeler/sentry-subset"
CC3M_TRAIN_TSV_URL = "https://storage.googleapis.com/gcc-data/Train/GCC-training.tsv"
CC3M_VAL_TSV_URL = "https://storage.googleapis.com/gcc-data/Validation/GCC-1.1.0-Validation.tsv"
AFHQ_V2_URL = "https://www.dropbox.com/s/vkzjokiwof5h8w6/afhq_v2.zip?dl=1"


@dataclass(frozen=True)
class HubSource:
    """A folder of split tar archives on the Hub and the leaf folders kept from inside them.

    ``hub_folder`` is where the tar parts sit, relative to ``ImageData/<split>``: the source
    folder itself for most archives (``SDv15-CC30K``), a leaf folder below it for the two 1M
    train sets (``IFv1-CC1M/IFv1-dpmsolver++-50-1M``). ``leaves`` are the folders kept from
    inside the tar (the manifest's ``source``), with the number of images each holds in the
    full archive; members of any other leaf in the tar are skipped unread and counted.
    ``fraction`` is the share of each archive's tar parts that is kept.

    On disk a leaf's images go to ``ImageData/<split>/<source folder>/<leaf>`` (the source
    folder alone when the leaf bears its name), wherever the Hub keeps the parts: the
    original's layout, so existing downloads keep working.
    """

    name: str
    split: str
    hub_folder: str
    leaves: tuple[tuple[str, int], ...]
    fraction: float
    family: str
    label: int = FAKE

    @property
    def folder(self) -> str:
        """The source folder under ``ImageData/<split>`` (the Hub folder's first component)."""
        return self.hub_folder.split("/", 1)[0]

    @property
    def hub_path(self) -> str:
        """The Hub folder holding the tar parts, relative to the repository root."""
        return f"{HUB_IMAGE_ROOT}/{self.split}/{self.hub_folder}"

    @property
    def leaf_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.leaves)

    def leaf_images(self, leaf: str) -> int:
        return dict(self.leaves)[leaf]

    @property
    def folder_leaf(self) -> str | None:
        """The kept leaf the Hub folder itself is (every member belongs to it), else None.

        ``cogview2-22K`` and ``Midjourneyv5-5K`` are their own leaf; the 1M train sets keep
        their parts in their leaf's folder. Archives of several leaves (``SDv15-CC30K``,
        ``IF-CC95K``, ``stylegan3-80K``) have none: their members' paths name the leaf.
        """
        last = self.hub_folder.rsplit("/", 1)[-1]
        return last if last in self.leaf_names else None

    def leaf_dir(self, leaf: str) -> str:
        """Where a leaf's images go, relative to the dataset root (the original's layout)."""
        base = f"{HUB_IMAGE_ROOT}/{self.split}/{self.folder}"
        return base if leaf == self.folder else f"{base}/{leaf}"

    def prefixes(self) -> tuple[str, ...]:
        return tuple(self.leaf_dir(leaf) + "/" for leaf in self.leaf_names)


@dataclass(frozen=True)
class RealSource:
    """A set of real photographs: where it comes from and how many images are wanted.

    ``kind``: ``cc3m`` (img2dataset over a Conceptual Captions TSV at ``origin``), ``kaggle``
    (a Kaggle dataset slug), ``url`` (a zip at a public URL), ``hf`` (a Hugging Face dataset
    repository: image files, zips or parquet shards). ``images``: the target count
    (CC3M keeps downloading URL chunks until it has that many), or None for all.
    """

    name: str
    split: str
    leaf: str
    kind: str
    origin: str
    images: int | None
    family: str = "real"
    label: int = REAL

    @property
    def leaf_names(self) -> tuple[str, ...]:
        return (self.leaf,)

    def leaf_dir(self, leaf: str | None = None) -> str:
        return f"{HUB_IMAGE_ROOT}/{self.split}/{self.leaf}"

    def prefixes(self) -> tuple[str, ...]:
        return (self.leaf_dir() + "/",)


def _stylegan(kind: str, data: str, images: int) -> tuple[str, int]:
    return (f"stylegan3-{kind}-{data}", images)


# fmt: off
# Hub folder (where the tar parts sit) vs the leaves kept from inside the tar: see DESIGN
# section 2, "Hub layout". Only the 1M train sets keep their parts in a leaf folder.
HUB_SOURCES: tuple[HubSource, ...] = (
    HubSource("IFv1-CC1M", "train", "IFv1-CC1M/IFv1-dpmsolver++-50-1M",
              (("IFv1-dpmsolver++-50-1M", 1_000_000),), 0.08, "diffusion"),
    HubSource("SDv15R-CC1M", "train", "SDv15R-CC1M/SDv15R-dpmsolver-25-1M",
              (("SDv15R-dpmsolver-25-1M", 1_000_000),), 0.075, "diffusion"),
    HubSource("stylegan3-80K", "train", "stylegan3-80K",
              tuple(_stylegan(k, d, 13_333) for k in ("r", "t")
                    for d in ("afhqv2-512x512", "ffhqu-1024x1024", "metfaces-1024x1024")),
              1.0, "gan"),
    HubSource("cogview2-22K", "val", "cogview2-22K", (("cogview2-22K", 22_000),), 0.5,
              "autoregressive"),
    HubSource("IF-CC95K", "val", "IF-CC95K",
              tuple((f"IF-{s}-15K", 15_000)
                    for s in ("ddim-50", "ddpm-50", "dpmsolver++-10", "dpmsolver++-25")),
              0.5, "diffusion"),
    HubSource("Midjourneyv5-5K", "val", "Midjourneyv5-5K", (("Midjourneyv5-5K", 5_000),), 0.5,
              "diffusion"),
    HubSource("SDv15-CC30K", "val", "SDv15-CC30K",
              (("SDv15R-dpmsolver-25-15K", 15_000),), 0.5, "diffusion"),
    HubSource("SDv21-CC15K", "val", "SDv21-CC15K",
              (("SDv2-dpmsolver-25-10K", 10_000),), 0.5, "diffusion"),
    HubSource("stylegan3-60K", "val", "stylegan3-60K",
              (_stylegan("r", "afhqv2-512x512", 10_000), _stylegan("t", "afhqv2-512x512", 10_000),
               _stylegan("t", "ffhqu-1024x1024", 10_000),
               _stylegan("t", "metfaces-1024x1024", 10_000)),
              0.5, "gan"),
)

REAL_SOURCES: tuple[RealSource, ...] = (
    RealSource("cc3m-train", "train", "cc3m", "cc3m", CC3M_TRAIN_TSV_URL, 155_000),
    # FFHQ-256 as the original took it: PNGs, so real faces are JPEG-encoded once, like the fakes
    RealSource("ffhq", "train", "ffhq", "kaggle", "denislukovnikov/ffhq256-images-only", 70_000),
    RealSource("afhq-v2", "train", "afhq-v2", "url", AFHQ_V2_URL, None),
    RealSource("cc3m-val", "val", "cc3m", "cc3m", CC3M_VAL_TSV_URL, None),
    RealSource("celeba-hq", "val", "celeba-hq", "kaggle",
               "badasstechie/celebahq-resized-256x256", 30_000),
)
# fmt: on

KAGGLE_SUBSET = "kaggle-subset"
# Names that stand for several sources on the command line.
REAL_GROUPS = {"cc3m": ("cc3m-train", "cc3m-val")}


def kept_parts(total: int, fraction: float) -> int:
    """How many of an archive's ``total`` tar parts a ``fraction`` keeps.

    Rounded down, at least one; an archive in one piece (``total`` 1) is always kept whole.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if total <= 1:
        return total
    return max(1, min(total, math.floor(total * fraction + 1e-9)))


def _unknown(kind: str, name: str, known: Sequence[str]) -> UserError:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return UserError(f"--sources: unknown {kind} '{name}'{hint} (known: {', '.join(known)})")


def select_hub_sources(
    names: Iterable[str] | None = None,
    train_fraction: float | None = None,
    val_fraction: float | None = None,
    catalog: Sequence[HubSource] = HUB_SOURCES,
) -> list[HubSource]:
    """The Hub sources named (all when ``names`` is empty; ``train``/``val`` select a split).

    ``train_fraction``/``val_fraction`` replace the catalog's fraction of every selected
    source of that split.
    """
    for flag, value in (("--train_fraction", train_fraction), ("--val_fraction", val_fraction)):
        if value is not None and not 0 < value <= 1:
            raise UserError(f"{flag} {value}: must be in (0, 1]")
    by_name = {s.name: s for s in catalog}
    wanted: list[str] = []
    for name in names or ("train", "val"):
        if name in ("train", "val"):
            wanted += [s.name for s in catalog if s.split == name]
        elif name in by_name:
            wanted.append(name)
        else:
            raise _unknown("Hub source", name, [*by_name, "train", "val"])
    chosen = [s for s in catalog if s.name in wanted]
    overrides = {"train": train_fraction, "val": val_fraction}
    return [
        replace(s, fraction=overrides[s.split]) if overrides.get(s.split) is not None else s
        for s in chosen
    ]


def select_real_sources(
    names: Iterable[str] | None = None, catalog: Sequence[RealSource] = REAL_SOURCES
) -> tuple[list[RealSource], bool]:
    """The real sources named (all by default) and whether the Kaggle subset is wanted."""
    by_name = {s.name: s for s in catalog}
    wanted: set[str] = set()
    subset = False
    for name in names or [s.name for s in catalog]:
        if name == KAGGLE_SUBSET:
            subset = True
        elif name in REAL_GROUPS:
            wanted.update(REAL_GROUPS[name])
        elif name in by_name:
            wanted.add(name)
        else:
            raise _unknown("real source", name, [*by_name, *REAL_GROUPS, KAGGLE_SUBSET])
    return [s for s in catalog if s.name in wanted], subset


def leaf_labels(
    hub: Sequence[HubSource] = HUB_SOURCES, real: Sequence[RealSource] = REAL_SOURCES
) -> dict[tuple[str, str], tuple[int, str]]:
    """``(split, leaf) -> (label, family)`` for every leaf folder of the catalog."""
    table: dict[tuple[str, str], tuple[int, str]] = {}
    for s in hub:
        for leaf in s.leaf_names:
            table[(s.split, leaf)] = (s.label, s.family)
    for r in real:
        table[(r.split, r.leaf)] = (r.label, r.family)
    return table


def format_catalog(hub: Sequence[HubSource] = HUB_SOURCES) -> str:
    """The catalog as a text table (for ``--help`` epilogues and the README)."""
    lines = [
        f"{'source':17s} {'split':5s} {'kept':>6s}  {'family':14s} "
        "Hub folder (tar parts) -> leaf folders kept from the tar"
    ]
    for s in hub:
        leaves = ", ".join(s.leaf_names)
        lines.append(
            f"{s.name:17s} {s.split:5s} {s.fraction:6.1%}  {s.family:14s} "
            f"{s.hub_folder} -> {leaves}"
        )
    return "\n".join(lines)
