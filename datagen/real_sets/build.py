"""Build the real sources (and import the Kaggle subset) into a dataset folder.

Each source downloads its archive, files or URLs into the scratch folder, sends every image
through a :class:`SourceWriter` (the one conversion, over all cores), deletes its downloads
unless archives are kept, and commits its rows to the manifest. Kinds: ``cc3m`` (img2dataset
over a TSV), ``kaggle`` (a Kaggle dataset's zip), ``url`` (a zip at a URL or path), ``hf`` (a
Hugging Face dataset repository: image files, zips or parquet shards).

:func:`check_sources` runs before any source starts (and in ``--dry_run``): every import and
credential the requested sources need, and every local file named, so that a missing Kaggle
key is reported at once rather than after hours of CC3M.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from tqdm.auto import tqdm

from datagen.catalog import HUB_IMAGE_ROOT, KAGGLE_SUBSET, KAGGLE_SUBSET_SLUG, RealSource
from datagen.convert import ConversionPool
from datagen.dataset_root import DatasetRoot
from datagen.download import Downloader, RemoteFile
from datagen.limits import MAX_MEMBER_BYTES
from datagen.manifest import LABEL_NAMES, REAL
from datagen.real_sets import import_failure
from datagen.real_sets.cc3m import (
    Cc3mOptions,
    ChunkLog,
    build_cc3m,
    img2dataset_problems,
    is_url,
    read_urls,
)
from datagen.real_sets.hf import HubDatasetFiles, convert_hf_dataset
from datagen.real_sets.kaggle import KaggleClient, kaggle_problems
from datagen.real_sets.zips import convert_zip, image_members, open_zip
from datagen.source_writer import OUTSIDE, SourceReport, SourceWriter
from rfd_common.errors import UserError
from rfd_common.files import atomic_write_json
from rfd_common.fingerprints import json_digest

# The flag that replaces a source's origin on the command line.
ORIGIN_FLAGS = {
    "cc3m-train": "--cc3m_train_tsv",
    "cc3m-val": "--cc3m_val_tsv",
    "afhq-v2": "--afhq_url",
}
KIND_WORDS = {
    "cc3m": "img2dataset over",
    "kaggle": "Kaggle",
    "url": "zip at",
    "hf": "Hugging Face dataset",
}


@dataclass(frozen=True)
class RealOptions:
    max_images: int | None = None
    keep_archives: bool = False
    progress: bool = True
    cc3m: Cc3mOptions = field(default_factory=Cc3mOptions)
    origins: dict[str, str] = field(default_factory=dict)  # source name -> path or URL
    endpoint: str | None = None  # Hugging Face Hub URL (None: $HF_ENDPOINT or huggingface.co)
    max_member_bytes: int | None = MAX_MEMBER_BYTES


def _cap(*limits: int | None) -> int | None:
    values = [v for v in limits if v is not None]
    return min(values) if values else None


def _comparable_prep(root: DatasetRoot) -> dict:
    return {k: v for k, v in root.prep.to_dict().items() if k != "encoder"}


def _limits(options: RealOptions) -> dict:
    """The member cap, for a fingerprint only when not the default (older states stay valid)."""
    if options.max_member_bytes == MAX_MEMBER_BYTES:
        return {}
    return {"max_member_bytes": options.max_member_bytes}


def _origin_flag(source: RealSource) -> str:
    return ORIGIN_FLAGS.get(source.name, f"--{source.name}")


def check_sources(
    sources: list[RealSource],
    subset: bool,
    options: RealOptions,
    kaggle_given: bool = False,
) -> list[str]:
    """Everything that would stop the requested sources, found before any starts.

    Imports (the Kaggle client, img2dataset, huggingface_hub and pyarrow) and Kaggle
    credentials of every source that needs them, and every local file named as an origin.
    ``kaggle_given``: a client was passed in (tests), so the real one is not checked. Each
    problem is one entry, naming the sources it stops; [] when there is none.
    """
    found: dict[str, list[str]] = {}

    def add(names: list[str], problems: list[str]) -> None:
        for problem in problems:
            stopped = found.setdefault(problem, [])
            stopped += [n for n in names if n not in stopped]

    kaggle_names = [s.name for s in sources if s.kind == "kaggle"] + [KAGGLE_SUBSET] * subset
    if kaggle_names and not kaggle_given:
        add(kaggle_names, kaggle_problems())
    cc3m_names = [s.name for s in sources if s.kind == "cc3m"]
    if cc3m_names:
        add(cc3m_names, img2dataset_problems())
    hf_names = [s.name for s in sources if s.kind == "hf"]
    if hf_names:
        for package, what in (("huggingface_hub", "huggingface_hub"), ("pyarrow", "pyarrow")):
            try:
                __import__(package)
            except ImportError as exc:
                add(hf_names, [import_failure(what, package, exc)])
    for s in sources:
        origin = options.origins.get(s.name, s.origin)
        local = s.kind in ("cc3m", "url") and not is_url(origin)
        if local and not Path(origin).expanduser().is_file():
            add([s.name], [f"{_origin_flag(s)} {origin}: file not found"])
    return [f"{', '.join(names)}: {problem}" for problem, names in found.items()]


def format_problems(problems: list[str]) -> str:
    """One message for every problem: a headline, then each problem indented."""
    lines = [
        f"cannot start: {len(problems)} problem{'s' * (len(problems) > 1)} would stop the "
        "requested sources (nothing was downloaded):"
    ]
    for problem in problems:
        first, *rest = problem.splitlines()
        lines.append(f"  {first}")
        lines += [f"    {line.strip()}" for line in rest]
    return "\n".join(lines)


def fetch_kaggle(dataset: str, folder: Path, client: KaggleClient, downloader: Downloader) -> Path:
    """The dataset's zip in ``folder``, downloaded unless a finished copy is there."""
    marker = folder / ".complete.json"
    if marker.is_file():
        recorded = json.loads(marker.read_text())
        zip_path = folder / recorded["zip"]
        if zip_path.is_file() and zip_path.stat().st_size == recorded["size"]:
            downloader.meter.add(recorded["size"])
            return zip_path
    zip_path = client.download(dataset, folder)
    if not zip_path.is_file():
        raise UserError(f"Kaggle dataset {dataset}: no zip at {zip_path} after the download")
    size = zip_path.stat().st_size
    downloader.meter.add(size)
    atomic_write_json(marker, {"dataset": dataset, "zip": zip_path.name, "size": size})
    return zip_path


def _discard(folder: Path, downloader: Downloader) -> None:
    if not folder.is_dir():
        return
    for path in sorted(folder.rglob("*"), reverse=True):
        if path.is_file():
            downloader.meter.remove_file(path)
        elif path.is_dir():
            path.rmdir()
    folder.rmdir()


def _url_file_name(url: str, fallback: str) -> str:
    name = PurePosixPath(unquote(urlsplit(url).path)).name
    return name or fallback


def _local_or_fetched(origin: str, folder: Path, downloader: Downloader, flag: str) -> Path:
    if is_url(origin):
        name = _url_file_name(origin, "download")
        return downloader.fetch(RemoteFile(origin, name), folder / name)
    path = Path(origin).expanduser()
    if not path.is_file():
        raise UserError(f"{flag} {origin}: file not found")
    return path


def _source_key(
    source: RealSource, origin: str, cap: int | None, root: DatasetRoot, options: RealOptions
) -> str:
    """What a finished source was built from; a change means it must be built again."""
    return json_digest(
        {
            "name": source.name,
            "kind": source.kind,
            "origin": origin,
            "cap": cap,
            "preprocessing": _comparable_prep(root),
            **_limits(options),
        }
    )


def _count_if_done(
    root: DatasetRoot,
    unit: str,
    key: str,
    prefixes: tuple[str, ...],
    report: SourceReport,
    leaf: str,
) -> bool:
    """Whether ``unit`` is already built from ``key``; if so, its images are counted."""
    if not root.is_done(unit, key, prefixes):
        return False
    report.already_done = True
    report.images[leaf] = len(root.rows_under(prefixes))
    return True


def _begin(root: DatasetRoot, unit: str, prefixes: tuple[str, ...]) -> bool:
    """Start (or restart) ``unit``: its half-written files go; True when its images were deleted."""
    root.remove_temporaries(prefixes)
    return root.begin(unit, prefixes)


@contextmanager
def _writing(
    root: DatasetRoot,
    pool: ConversionPool,
    report: SourceReport,
    leaf_dirs: dict[str, str],
    family: str,
    cap: int | None,
    *,
    total: int | None,
    desc: str,
    progress: bool,
) -> Iterator[SourceWriter]:
    """A :class:`SourceWriter` with its progress bar (``total``, ``desc``), closed at the end."""
    bar = tqdm(total=total, desc=desc, unit="img", disable=not progress)
    writer = SourceWriter(root.root, pool, report, leaf_dirs, family, cap, bar)
    try:
        yield writer
    finally:
        bar.close()


@dataclass(frozen=True)
class _KindConversion:
    """Converting one real source's images, by its kind; what every kind's step shares."""

    source: RealSource
    origin: str
    root: DatasetRoot
    downloader: Downloader
    options: RealOptions
    writer: SourceWriter
    scratch: Path

    def run(self, kaggle: KaggleClient | None, redone: bool) -> dict:
        """Convert every image; returns what to add to the source's description."""
        kind = self.source.kind
        if kind == "kaggle":
            self._kaggle(kaggle)
        elif kind == "url":
            self._zip(_local_or_fetched(self.origin, self.scratch, self.downloader, self._flag))
        elif kind == "hf":
            return {"commit": self._hf()}
        elif kind == "cc3m":
            self._cc3m(redone)
        else:
            raise ValueError(f"unknown kind {kind!r}")
        return {}

    @property
    def _flag(self) -> str:
        return _origin_flag(self.source)

    def _zip(self, zip_path: Path) -> None:
        convert_zip(
            zip_path, self.writer, self.source.leaf, max_member_bytes=self.options.max_member_bytes
        )

    def _kaggle(self, kaggle: KaggleClient | None) -> None:
        if kaggle is None:
            raise UserError(f"{self.source.name}: no Kaggle client")
        self._zip(fetch_kaggle(self.origin, self.scratch, kaggle, self.downloader))

    def _hf(self) -> str:
        return convert_hf_dataset(
            self.origin,
            HubDatasetFiles(self.options.endpoint),
            self.downloader,
            self.scratch,
            self.writer,
            self.source.leaf,
            self.options.keep_archives,
            self.options.max_member_bytes,
        )

    def _cc3m(self, redone: bool) -> None:
        tsv = _local_or_fetched(self.origin, self.scratch / "tsv", self.downloader, self._flag)
        chunks_key = json_digest({"tsv": self.origin, "preprocessing": _comparable_prep(self.root)})
        log_path = self.root.work / "state" / f"{self.source.name}.chunks.json"
        if redone:  # its images were deleted: so is the record of chunks done
            log_path.unlink(missing_ok=True)
        log = ChunkLog(log_path, chunks_key)
        build_cc3m(
            read_urls(tsv),
            self.source.leaf,
            self.writer,
            self.scratch,
            log,
            self.options.cc3m,
            self.options.keep_archives,
            quiet=not self.options.progress,
        )


def build_real_source(
    source: RealSource,
    root: DatasetRoot,
    pool: ConversionPool,
    downloader: Downloader,
    kaggle: KaggleClient | None,
    options: RealOptions,
) -> SourceReport:
    """Build one real source into ``root`` and commit its rows.

    ``kaggle``: the client for the ``kaggle`` kind (the ``hf`` kind reads the Hub at
    ``options.endpoint``).
    """
    report = SourceReport(source.name, source.split, source.label)
    origin = options.origins.get(source.name, source.origin)
    prefixes = source.prefixes()
    cap = _cap(source.images, options.max_images)
    key = _source_key(source, origin, cap, root, options)
    if _count_if_done(root, source.name, key, prefixes, report, source.leaf):
        return report
    redone = _begin(root, source.name, prefixes)
    scratch = root.scratch / source.name
    leaf_dirs = {source.leaf: source.leaf_dir()}
    desc = f"{source.split}/{source.name}"
    with _writing(
        root,
        pool,
        report,
        leaf_dirs,
        source.family,
        cap,
        total=cap,
        desc=desc,
        progress=options.progress,
    ) as writer:
        conversion = _KindConversion(source, origin, root, downloader, options, writer, scratch)
        extra = conversion.run(kaggle, redone)
        rows = writer.finish()
    if not options.keep_archives:
        _discard(scratch, downloader)
    description = {
        "split": source.split,
        "label": source.label,
        "family": source.family,
        "origin": origin,
        "leaves": [source.leaf],
        "target_images": cap,
        **extra,
    }
    root.commit(source.name, key, rows, prefixes, description)
    return report


def _subset_leaf(
    name: str, labels: dict[tuple[str, str], tuple[int, str]]
) -> tuple[str, str, str, str] | None:
    """``(split, leaf, leaf folder, path below it)`` of a Kaggle-subset member, or None."""
    parts = PurePosixPath(name).parts
    if HUB_IMAGE_ROOT not in parts[:-1]:
        return None
    start = parts.index(HUB_IMAGE_ROOT)
    if len(parts) < start + 4:
        return None
    split = parts[start + 1]
    rest = parts[start + 2 :]
    for depth, folder in enumerate(rest[:-1]):
        if (split, folder) in labels:
            leaf_dir = "/".join((HUB_IMAGE_ROOT, split, *rest[: depth + 1]))
            return split, folder, leaf_dir, "/".join(rest[depth + 1 :])
    return None


def _group_subset_members(
    zip_path: Path, labels: dict[tuple[str, str], tuple[int, str]]
) -> tuple[dict[tuple[str, str, str], list[str]], list[str]]:
    """The subset zip's images by ``(split, leaf, leaf folder)``, and those in no known leaf."""
    with open_zip(zip_path) as archive:
        members = [m.filename for m in image_members(archive)]
    groups: dict[tuple[str, str, str], list[str]] = {}
    outside: list[str] = []
    for name in members:
        found = _subset_leaf(name, labels)
        if found is None:
            outside.append(name)
        else:
            groups.setdefault(found[:3], []).append(name)
    return groups, outside


@dataclass(frozen=True)
class _SubsetImport:
    """Importing the downloaded Kaggle subset, one leaf folder at a time."""

    root: DatasetRoot
    pool: ConversionPool
    slug: str
    zip_path: Path
    labels: dict[tuple[str, str], tuple[int, str]]
    options: RealOptions

    def _key(self, leaf_dir: str) -> str:
        return json_digest(
            {
                "slug": self.slug,
                "zip": self.zip_path.stat().st_size,
                "leaf_dir": leaf_dir,
                "cap": self.options.max_images,
                "preprocessing": _comparable_prep(self.root),
                **_limits(self.options),
            }
        )

    def leaf(self, split: str, leaf: str, leaf_dir: str, names: list[str]) -> SourceReport:
        """Convert and commit the members ``names`` of one leaf folder (unless already done)."""
        label, family = self.labels[(split, leaf)]
        unit = f"{KAGGLE_SUBSET}-{split}-{leaf}"
        report = SourceReport(f"{KAGGLE_SUBSET}:{leaf}", split, label)
        prefixes = (leaf_dir + "/",)
        key = self._key(leaf_dir)
        if _count_if_done(self.root, unit, key, prefixes, report, leaf):
            return report
        _begin(self.root, unit, prefixes)
        wanted = set(names)
        options = self.options
        with _writing(
            self.root,
            self.pool,
            report,
            {leaf: leaf_dir},
            family,
            options.max_images,
            total=len(names),
            desc=f"{split}/{leaf}",
            progress=options.progress,
        ) as writer:
            convert_zip(
                self.zip_path,
                writer,
                leaf,
                select=wanted.__contains__,
                relative_of=lambda name: _subset_leaf(name, self.labels)[3],  # type: ignore[index]
                max_member_bytes=options.max_member_bytes,
            )
            rows = writer.finish()
        description = {
            "split": split,
            "label": label,
            "family": family,
            "origin": f"kaggle://{self.slug}",
            "leaves": [leaf],
        }
        self.root.commit(unit, key, rows, prefixes, description)
        return report


def _outside_report(names: list[str]) -> SourceReport:
    """The subset's images in no known leaf folder, counted as skipped."""
    note = SourceReport(f"{KAGGLE_SUBSET}:other", "train", REAL)
    for name in names:
        note.skip(OUTSIDE, name)
    return note


def import_kaggle_subset(
    root: DatasetRoot,
    pool: ConversionPool,
    downloader: Downloader,
    kaggle: KaggleClient,
    labels: dict[tuple[str, str], tuple[int, str]],
    options: RealOptions,
) -> list[SourceReport]:
    """Download the ready subset and convert it leaf by leaf (each leaf committed on its own)."""
    slug = options.origins.get(KAGGLE_SUBSET, KAGGLE_SUBSET_SLUG)
    scratch = root.scratch / KAGGLE_SUBSET
    zip_path = fetch_kaggle(slug, scratch, kaggle, downloader)
    groups, outside = _group_subset_members(zip_path, labels)
    subset = _SubsetImport(root, pool, slug, zip_path, labels, options)
    reports = [subset.leaf(*where, names) for where, names in sorted(groups.items())]
    if outside:
        reports.append(_outside_report(outside))
    if not options.keep_archives:
        _discard(scratch, downloader)
    return reports


def describe_plan(sources: list[RealSource], subset: bool, options: RealOptions) -> str:
    """The ``--dry_run`` report of ``add_real_data``."""
    lines = [f"{'source':12s} {'split':5s} {'images':>8s}  from"]
    for s in sources:
        origin = options.origins.get(s.name, s.origin)
        cap = _cap(s.images, options.max_images)
        shown = "all" if cap is None else str(cap)
        how = KIND_WORDS.get(s.kind, s.kind)
        lines.append(f"{s.name:12s} {s.split:5s} {shown:>8s}  {how} {origin} -> {s.leaf_dir()}")
    if subset:
        slug = options.origins.get(KAGGLE_SUBSET, KAGGLE_SUBSET_SLUG)
        lines.append(f"{KAGGLE_SUBSET:12s} both  {'all':>8s}  Kaggle {slug} -> ImageData/...")
    labels = ", ".join(f"{k}={v}" for k, v in LABEL_NAMES.items())
    lines.append(f"(labels: {labels}; nothing was downloaded)")
    return "\n".join(lines)
