"""Turn the images of one source into converted JPEGs and manifest rows.

Every source (Hub archive stream, zip, img2dataset folder) hands its images to a
:class:`SourceWriter` as ``(leaf, name below the leaf folder, bytes)``. The writer keeps the
first ``max_images`` images of each leaf in the order offered, skips names that would escape
the leaf folder or collide, reuses outputs an interrupted run already wrote, and sends the
rest through the shared :class:`~datagen.convert.ConversionPool`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from datagen.convert import ConversionPool, Result, Task
from datagen.manifest import ManifestRow
from datagen.readers import IMAGE_SUFFIXES

MAX_EXAMPLES = 3

# Reasons an offered member does not become an image of the dataset.
NOT_IMAGE = "not an image file"
UNSAFE = "path escapes the target folder"
PARTIAL = "cut by the end of the kept parts"
UNREADABLE = "unreadable image"
DUPLICATE = "duplicate output name"
BEYOND_CAP = "beyond --max_images_per_source"
OUTSIDE = "not in a catalog leaf folder"
NOT_FILE = "not a regular file"
OVERSIZED = "larger than --max_member_bytes"


@dataclass
class SourceReport:
    """What building one source did."""

    name: str
    split: str
    label: int
    images: Counter[str] = field(default_factory=Counter)
    converted: int = 0
    reused: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    parts_fetched: list[str] = field(default_factory=list)
    bytes_fetched: int = 0
    truncated: bool = False
    already_done: bool = False
    expected_images: int | None = None

    def skip(self, reason: str, name: str, count: int = 1) -> None:
        self.skipped[reason] += count
        shown = self.examples.setdefault(reason, [])
        if len(shown) < MAX_EXAMPLES:
            shown.append(name)

    @property
    def total_images(self) -> int:
        return sum(self.images.values())


def output_name(relative: str) -> PurePosixPath | None:
    """The JPEG path (relative to the leaf folder) for a member name, or None if unsafe."""
    if not relative or "\\" in relative or "\0" in relative or relative.startswith("/"):
        return None
    parts = [p for p in relative.split("/") if p not in ("", ".")]
    if not parts or ".." in parts or ":" in parts[0]:
        return None
    path = PurePosixPath(*parts)
    return path.with_suffix(".jpg")


def is_image_name(name: str) -> bool:
    base = PurePosixPath(name).name
    return not base.startswith(".") and PurePosixPath(base).suffix.lower() in IMAGE_SUFFIXES


class SourceWriter:
    """Collects one source's rows; use :meth:`finish` to wait for the conversions."""

    def __init__(
        self,
        root: Path,
        pool: ConversionPool,
        report: SourceReport,
        leaf_dirs: dict[str, str],
        family: str,
        max_images: int | None = None,
        progress: Any = None,
    ) -> None:
        self.root = Path(root)
        self.progress = progress
        self.pool = pool
        self.report = report
        self.leaf_dirs = leaf_dirs
        self.family = family
        self.max_images = max_images
        self.accepted: Counter[str] = Counter()
        self._targets: set[str] = set()
        self.rows: list[ManifestRow] = []
        pool.on_result = self._on_result

    def is_full(self, leaf: str) -> bool:
        return self.max_images is not None and self.accepted[leaf] >= self.max_images

    def all_full(self, leaves: list[str] | tuple[str, ...] | None = None) -> bool:
        return all(self.is_full(leaf) for leaf in (leaves or list(self.leaf_dirs)))

    def wants(self, leaf: str | None, relative: str) -> bool:
        """Whether to read the bytes of this member; counts the reason when not."""
        if leaf is None:
            self.report.skip(OUTSIDE, relative)
            return False
        if not is_image_name(relative):
            self.report.skip(NOT_IMAGE, relative)
            return False
        if output_name(relative) is None:
            self.report.skip(UNSAFE, relative)
            return False
        if self.is_full(leaf):
            self.report.skip(BEYOND_CAP, relative)
            return False
        return True

    def needs_bytes(
        self,
        leaf: str | None,
        relative: str,
        size: int | None = None,
        max_bytes: int | None = None,
        label: str | None = None,
    ) -> bool:
        """Whether to read a member's bytes: it is :meth:`wants`-ed, its JPEG is not on disk
        already (then it is taken as it is), and its ``size`` is within ``max_bytes``
        (None: no cap); counts the reason when not (``label`` names the member there)."""
        if not self.wants(leaf, relative):
            return False
        if self.output_exists(leaf, relative):  # type: ignore[arg-type]
            self.offer(leaf, relative, None)  # type: ignore[arg-type]
            return False
        if max_bytes is not None and size is not None and size > max_bytes:
            self.report.skip(OVERSIZED, f"{label or relative} ({size} bytes)")
            return False
        return True

    def output_exists(self, leaf: str, relative: str) -> bool:
        """Whether an earlier run already wrote this image's JPEG."""
        name = output_name(relative)
        return name is not None and (self.root / self.leaf_dirs[leaf] / name).is_file()

    def offer(self, leaf: str, relative: str, data: bytes | None) -> None:
        """Take one image (``data`` None: its output must already exist, else it is skipped)."""
        name = output_name(relative)
        if name is None:
            self.report.skip(UNSAFE, relative)
            return
        if self.is_full(leaf):
            self.report.skip(BEYOND_CAP, relative)
            return
        target_rel = f"{self.leaf_dirs[leaf]}/{name.as_posix()}"
        if target_rel in self._targets:
            self.report.skip(DUPLICATE, relative)
            return
        leaf_root = (self.root / self.leaf_dirs[leaf]).resolve()
        target = self.root / target_rel
        if not target.resolve().is_relative_to(leaf_root):  # a symlinked folder on the way
            self.report.skip(UNSAFE, relative)
            return
        self._targets.add(target_rel)
        self.accepted[leaf] += 1
        if target.is_file():
            self.report.reused += 1
            self._add_row(leaf, target_rel)
            return
        if data is None:
            self.report.skip(UNREADABLE, relative)
            return
        self.pool.submit(Task(data, str(target), key=(leaf, target_rel, relative)))

    def _on_result(self, result: Result) -> None:
        leaf, target_rel, relative = result.key  # type: ignore[misc]
        if result.ok:
            self.report.converted += 1
            self._add_row(leaf, target_rel)
        else:
            self.report.skip(UNREADABLE, f"{relative} ({result.error})")

    def _add_row(self, leaf: str, target_rel: str) -> None:
        self.rows.append(
            ManifestRow(
                path=target_rel,
                label=self.report.label,
                source=leaf,
                split=self.report.split,
                family=self.family,
            )
        )
        self.report.images[leaf] += 1
        if self.progress is not None:
            self.progress.update(1)

    def finish(self) -> list[ManifestRow]:
        """Wait for the pending conversions; the source's rows."""
        self.pool.drain()
        return self.rows
