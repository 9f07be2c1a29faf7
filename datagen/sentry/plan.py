"""What a subset build will fetch: per source its archives, kept parts, bytes and images.

The same plan drives ``--dry_run`` and the real run, so the two agree on parts and bytes.
Images expected are an estimate: the catalog's image count of a leaf times the share of the
archive's bytes kept (a cut stream loses one partial member), capped by
``--max_images_per_source``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath

from datagen.catalog import HubSource, kept_parts
from datagen.sentry.hub import HubClient
from datagen.sentry.parts import Archive, RemotePart, format_part_range, group_archives
from rfd_common.errors import UserError


@dataclass(frozen=True)
class ArchivePlan:
    """One archive of a source: the leaf it feeds (None: its members' paths say) and kept parts."""

    archive: Archive
    leaf: str | None
    kept: tuple[RemotePart, ...]

    @property
    def kept_bytes(self) -> int:
        return sum(p.size for p in self.kept)

    @property
    def share(self) -> float:
        return self.kept_bytes / self.archive.size if self.archive.size else 0.0

    def scratch(self, prefetch: int) -> int:
        """Most bytes of this archive on disk at once: ``prefetch + 1`` consecutive parts."""
        window = prefetch + 1
        sizes = [p.size for p in self.kept]
        return max((sum(sizes[i : i + window]) for i in range(len(sizes))), default=0)


@dataclass
class SourcePlan:
    source: HubSource
    archives: list[ArchivePlan]
    ignored: list[Archive] = field(default_factory=list)
    missing_leaves: list[str] = field(default_factory=list)
    max_images: int | None = None

    @property
    def kept_parts(self) -> list[RemotePart]:
        return [p for a in self.archives for p in a.kept]

    @property
    def total_parts(self) -> int:
        return sum(len(a.archive.parts) for a in self.archives)

    @property
    def kept_bytes(self) -> int:
        return sum(a.kept_bytes for a in self.archives)

    def expected_images(self) -> dict[str, int]:
        """Estimated images per leaf (see the module docstring)."""
        estimate = dict.fromkeys(self.source.leaf_names, 0.0)
        for a in self.archives:
            leaves = [a.leaf] if a.leaf is not None else list(self.source.leaf_names)
            for leaf in leaves:
                estimate[leaf] += self.source.leaf_images(leaf) * a.share
        capped = {}
        for leaf, value in estimate.items():
            n = int(value)
            capped[leaf] = n if self.max_images is None else min(n, self.max_images)
        return capped

    def scratch(self, prefetch: int, keep: bool) -> int:
        if keep:
            return self.kept_bytes
        return max((a.scratch(prefetch) for a in self.archives), default=0)


def archive_leaf(source: HubSource, archive: Archive) -> str | bool | None:
    """The leaf every member of an archive belongs to; None when its members' paths say which
    (the leaves exist only inside the tar); False when the archive is not wanted.

    An archive in the source's Hub folder feeds the folder's own leaf when the folder is one
    (``cogview2-22K``, the 1M train sets), else its members say. An archive in a subfolder
    feeds the kept leaf the subfolder is named after; one in any other subfolder is skipped.
    """
    below = PurePosixPath(archive.directory).relative_to(source.hub_path).parts
    if below:
        return below[0] if below[0] in source.leaf_names else False
    return source.folder_leaf


def plan_source(client: HubClient, source: HubSource, max_images: int | None = None) -> SourcePlan:
    files = client.list_files(source.hub_path)
    archives = group_archives(files)
    if not archives:
        raise UserError(
            f"{source.name}: no .tar.gz archives under {source.hub_path} in "
            f"{client.repo_id}@{client.pinned}"
        )
    plans, ignored = [], []
    for archive in archives:
        leaf = archive_leaf(source, archive)
        if leaf is False:
            ignored.append(archive)
            continue
        keep = kept_parts(len(archive.parts), source.fraction)
        plans.append(ArchivePlan(archive, leaf, archive.parts[:keep]))  # type: ignore[arg-type]
    fed = {a.leaf for a in plans}
    missing = [] if None in fed else [leaf for leaf in source.leaf_names if leaf not in fed]
    if not plans:
        raise UserError(
            f"{source.name}: none of the archives under {source.hub_path} belongs to the "
            f"catalog's leaf folders ({', '.join(source.leaf_names)})"
        )
    return SourcePlan(source, plans, ignored, missing, max_images)


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def format_plan(plans: list[SourcePlan], prefetch: int, keep: bool) -> str:
    """The ``--dry_run`` report: per source parts, bytes, images expected, scratch needed."""
    lines = []
    header = (
        f"{'source':17s} {'split':5s} {'parts':>9s} {'bytes':>12s} {'images':>10s} {'scratch':>10s}"
    )
    lines.append(header)
    for plan in plans:
        s = plan.source
        expected = sum(plan.expected_images().values())
        lines.append(
            f"{s.name:17s} {s.split:5s} {len(plan.kept_parts):>4d}/{plan.total_parts:<4d} "
            f"{plan.kept_bytes:>12d} {expected:>10d} {plan.scratch(prefetch, keep):>10d}"
        )
        for a in plan.archives:
            leaf = a.leaf or "leaves inside the tar"
            lines.append(
                f"    {leaf}: {len(a.kept)} of {len(a.archive.parts)} parts "
                f"({format_part_range(a.kept)}), {format_bytes(a.kept_bytes)}"
            )
        for archive in plan.ignored:
            lines.append(f"    skipped (leaf not in the catalog): {archive.directory}")
        for leaf in plan.missing_leaves:
            lines.append(f"    warning: no archive found for leaf {leaf}")
    total_bytes = sum(p.kept_bytes for p in plans)
    total_images = sum(sum(p.expected_images().values()) for p in plans)
    per_source = [p.scratch(prefetch, keep) for p in plans]
    scratch = sum(per_source) if keep else max(per_source, default=0)
    lines.append(
        f"total: {sum(len(p.kept_parts) for p in plans)} parts, {format_bytes(total_bytes)} "
        f"to download, about {total_images} images, scratch disk needed "
        f"{format_bytes(scratch)} ({scratch} bytes)"
        + (" (archives kept)" if keep else f" (one part at a time + {prefetch} prefetched)")
    )
    if plans and plans[0].max_images is not None:
        lines.append("(with --max_images_per_source a source may stop before its last part)")
    return "\n".join(lines)
