"""Build the Sentry subset: per source, stream its kept parts and convert members as they come.

For each archive: parts are fetched one by one (:class:`PartPipeline`), read as one stream
(:class:`ChainedParts` -> :class:`GunzipReader` -> tar), each member mapped to its leaf folder
and handed to a :class:`SourceWriter`; a consumed part is deleted at once. At the end of the
source its rows replace the source's rows in the manifest, atomically.

Members are skipped unread, and counted in the source's report, when they lie in no leaf the
catalog keeps (``SDv15-CC30K``'s tars also hold ``SDv15-dpmsolver-25-15K``), are not images,
have unsafe names, or are larger than ``--max_member_bytes``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from datagen.convert import ConversionPool
from datagen.dataset_root import DatasetRoot
from datagen.download import Downloader, RemoteFile
from datagen.sentry.fetch import FetchFn, PartPipeline
from datagen.sentry.hub import HubClient
from datagen.sentry.parts import RemotePart
from datagen.sentry.plan import ArchivePlan, SourcePlan
from datagen.sentry.stream import (
    MAX_MEMBER_BYTES,
    ChainedParts,
    GunzipReader,
    StreamStats,
    iter_members,
)
from datagen.source_writer import (
    NOT_FILE,
    OUTSIDE,
    OVERSIZED,
    PARTIAL,
    UNSAFE,
    SourceReport,
    SourceWriter,
)
from rfd_common.fingerprints import json_digest


@dataclass(frozen=True)
class BuildOptions:
    max_images: int | None = None
    prefetch: int = 1
    keep_archives: bool = False
    progress: bool = True
    max_member_bytes: int | None = MAX_MEMBER_BYTES


def member_leaf(plan: ArchivePlan, leaves: tuple[str, ...], name: str) -> tuple[str | None, str]:
    """``(leaf, path below the leaf folder)`` for a member name; leaf None: not kept.

    A member belongs to the first kept leaf its folders name (the path below is what follows
    that folder). Otherwise it belongs to the archive's own leaf, if it has one (the path below
    is the name without its first folder, ``tar --strip-components 1``, else the bare name),
    or to none: a leaf the catalog does not keep, skipped.
    """
    parts = PurePosixPath(name).parts
    for i, part in enumerate(parts[:-1]):
        if part in leaves and (plan.leaf is None or part == plan.leaf):
            return part, "/".join(parts[i + 1 :])
    rest = "/".join(parts[1:]) if len(parts) > 1 else name
    if plan.leaf is not None:
        return plan.leaf, rest
    return None, name


def source_key(
    plan: SourcePlan,
    client: HubClient,
    prep: dict,
    max_images: int | None,
    max_member_bytes: int | None = MAX_MEMBER_BYTES,
) -> str:
    """What a finished source was built from; a change means it must be built again.

    The member cap counts only when it is not the default, so sources built before the cap
    existed stay finished.
    """
    facts = {
        "repo": client.repo_id,
        "folder": plan.source.hub_path,
        "leaves": plan.source.leaf_names,
        "parts": [(p.path, p.size, p.sha256) for p in plan.kept_parts],
        "max_images": max_images,
        "preprocessing": {k: v for k, v in prep.items() if k != "encoder"},
    }
    if max_member_bytes != MAX_MEMBER_BYTES:
        facts["max_member_bytes"] = max_member_bytes
    return json_digest(facts)


def source_description(plan: SourcePlan, client: HubClient, report: SourceReport) -> dict:
    s = plan.source
    return {
        "split": s.split,
        "label": s.label,
        "family": s.family,
        "origin": f"hf://datasets/{client.repo_id}@{client.pinned}/{s.hub_path}",
        "leaves": list(s.leaf_names),
        "fraction": s.fraction,
        "parts": [p.name for p in plan.kept_parts],
        "parts_total": plan.total_parts,
        "stream_cut": report.truncated,
        "partial_members_dropped": report.skipped.get(PARTIAL, 0),
        "members_outside_kept_leaves": report.skipped.get(OUTSIDE, 0),
        "oversized_members_refused": report.skipped.get(OVERSIZED, 0),
    }


def _stream_archive(
    plan: ArchivePlan,
    source_leaves: tuple[str, ...],
    pipeline: PartPipeline,
    writer: SourceWriter,
    report: SourceReport,
    max_member_bytes: int | None = MAX_MEMBER_BYTES,
) -> None:
    chained = ChainedParts(pipeline.paths(), on_done=pipeline.on_consumed)
    reader = GunzipReader(chained, compressed=plan.archive.compressed, name=plan.archive.base)
    stats = StreamStats()
    feeds = (plan.leaf,) if plan.leaf is not None else source_leaves

    def wanted(name: str) -> bool:
        leaf, below = member_leaf(plan, source_leaves, name)
        return writer.wants(leaf, below)

    members = iter_members(reader, stats, wanted, max_member_bytes)
    try:
        stopped_early = False
        for member in members:
            leaf, below = member_leaf(plan, source_leaves, member.name)
            writer.offer(leaf, below, member.data)  # type: ignore[arg-type]
            if writer.all_full(feeds):
                stopped_early = True
                break
        if not stopped_early and not reader.truncated:
            reader.drain()
    finally:
        members.close()
        chained.close()
    report.truncated = report.truncated or stats.truncated
    if stats.not_files:
        report.skip(NOT_FILE, plan.archive.base, stats.not_files)
    for name in stats.unsafe:
        report.skip(UNSAFE, name)
    for name, size in stats.oversized:
        report.skip(OVERSIZED, f"{name} ({size} bytes)")
    if stats.partial:
        report.skip(PARTIAL, plan.kept[-1].name, stats.partial)


def _count_finished(report: SourceReport, root: DatasetRoot, prefixes: tuple[str, ...]) -> None:
    """Mark a finished source done in ``report``, with its images counted per leaf."""
    report.already_done = True
    for row in root.rows_under(prefixes):
        report.images[row.source] += 1


def _read_archive(
    plan: ArchivePlan,
    source_leaves: tuple[str, ...],
    pipeline: PartPipeline,
    writer: SourceWriter,
    report: SourceReport,
    max_member_bytes: int | None,
) -> None:
    """Stream one archive through ``writer``, then close its pipeline and count what it fetched."""
    success = False
    try:
        _stream_archive(plan, source_leaves, pipeline, writer, report, max_member_bytes)
        success = True
    finally:
        pipeline.close(success)
        report.parts_fetched += [p.path for p in pipeline.fetched]
        report.bytes_fetched += sum(p.size for p in pipeline.fetched)


def _read_archives(
    plan: SourcePlan,
    writer: SourceWriter,
    report: SourceReport,
    fetch: FetchFn,
    scratch: Path,
    downloader: Downloader,
    options: BuildOptions,
) -> None:
    """Read the source's archives in turn, skipping those whose leaves are already full."""
    leaves = plan.source.leaf_names
    for archive_plan in plan.archives:
        feeds = (archive_plan.leaf,) if archive_plan.leaf else leaves
        if writer.all_full(feeds):
            continue
        pipeline = PartPipeline(
            archive_plan.kept,
            fetch,
            lambda part: scratch / part.path,
            downloader.meter,
            prefetch=options.prefetch,
            keep=options.keep_archives,
        )
        _read_archive(archive_plan, leaves, pipeline, writer, report, options.max_member_bytes)


def build_source(
    plan: SourcePlan,
    client: HubClient,
    downloader: Downloader,
    root: DatasetRoot,
    pool: ConversionPool,
    options: BuildOptions,
) -> SourceReport:
    """Build one source into ``root`` and commit its rows; returns what happened."""
    source = plan.source
    report = SourceReport(source.name, source.split, source.label)
    prefixes = source.prefixes()
    key = source_key(
        plan, client, root.prep.to_dict(), options.max_images, options.max_member_bytes
    )
    if root.is_done(source.name, key, prefixes):
        _count_finished(report, root, prefixes)
        return report
    root.remove_temporaries(prefixes)
    root.begin(source.name, prefixes)  # images of unknown settings are made again
    expected = sum(plan.expected_images().values())
    report.expected_images = expected
    bar = tqdm(
        total=expected or None,
        desc=f"{source.split}/{source.name}",
        unit="img",
        disable=not options.progress,
    )
    leaf_dirs = {leaf: source.leaf_dir(leaf) for leaf in source.leaf_names}
    writer = SourceWriter(
        root.root, pool, report, leaf_dirs, source.family, options.max_images, progress=bar
    )
    scratch = scratch_path(root, client.repo_id)
    fetch = _fetcher(client, downloader, scratch)
    try:
        _read_archives(plan, writer, report, fetch, scratch, downloader, options)
        rows = writer.finish()
    finally:
        bar.close()
    root.commit(source.name, key, rows, prefixes, source_description(plan, client, report))
    return report


def scratch_path(root: DatasetRoot, repo_id: str) -> Path:
    """Where a repository's parts are downloaded (``--scratch_dir``)."""
    return root.scratch / repo_id.replace("/", "__")


def _fetcher(client: HubClient, downloader: Downloader, scratch: Path) -> FetchFn:
    """Download a part into ``scratch``; a whole copy already there is used as it is."""

    def fetch(part: RemotePart, cancel: threading.Event) -> Path:
        dest = scratch / part.path
        if dest.is_file() and dest.stat().st_size == part.size:
            remote = RemoteFile(url="", name=part.name, size=part.size, sha256=part.sha256)
        else:
            remote = client.remote_file(part)
        return downloader.fetch(remote, dest, cancel)

    return fetch
