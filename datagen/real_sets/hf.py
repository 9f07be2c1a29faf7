"""Real sets stored as a Hugging Face dataset repository (kind ``hf``).

The repository's files are listed with ``huggingface_hub`` (``HfApi.dataset_info`` pins the
commit, ``HfApi.list_repo_tree`` lists every file with its size and LFS sha256) and fetched by
:class:`~datagen.download.Downloader` from their resolve URLs (``hf_hub_url``, with
``build_hf_headers`` for a token), so downloads resume, are checked against size and sha256,
and honour ``--endpoint`` / ``HF_ENDPOINT`` like the Hub fakes.

The images are converted straight from what the repository stores, in sorted path order:

* image files (``00000.png``...), each fetched, converted and deleted;
* zip archives, read member by member like the other zips;
* parquet shards with an image column (``image`` by default) of ``{bytes, path}`` structs, as
  the ``datasets`` library writes them; the output is named after the cell's ``path`` when it
  has one, else after the shard and row.

Other files (README, ``.gitattributes``) are counted as not images. The original PNG bytes
reach the one conversion, so a lossless source stays decoded once, like the fakes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from datagen.download import Downloader, RemoteFile
from datagen.hub_access import default_endpoint, hub_errors
from datagen.limits import MAX_MEMBER_BYTES
from datagen.real_sets.zips import common_folder, convert_zip
from datagen.source_writer import (
    BEYOND_CAP,
    NOT_IMAGE,
    UNREADABLE,
    SourceWriter,
    is_image_name,
)
from rfd_common.errors import UserError

IMAGE_COLUMN = "image"
PARQUET_BATCH_ROWS = 64
# Image files fetched ahead of the conversion (each a few hundred KB).
AHEAD = 8


@dataclass(frozen=True)
class RepoEntry:
    """One file of the repository: path, size in bytes, LFS sha256 when stored in LFS."""

    path: str
    size: int
    sha256: str | None = None


class HubDatasetFiles:
    """What the ``hf`` kind needs from the Hub, through ``huggingface_hub``."""

    def __init__(
        self, endpoint: str | None = None, revision: str = "main", token: str | None = None
    ) -> None:
        self.endpoint = (endpoint or default_endpoint()).rstrip("/")
        self.revision = revision
        self.token = token

    def _api(self) -> Any:
        from huggingface_hub import HfApi

        return HfApi(endpoint=self.endpoint, token=self.token)

    def list_files(self, repo_id: str) -> tuple[str, list[RepoEntry]]:
        """``(commit, every file)`` of the dataset repository ``repo_id``."""
        from huggingface_hub.hf_api import RepoFile

        api = self._api()
        with hub_errors(f"Hugging Face dataset {repo_id}@{self.revision} on {self.endpoint}"):
            commit = api.dataset_info(repo_id, revision=self.revision).sha or self.revision
            tree = list(
                api.list_repo_tree(repo_id, recursive=True, repo_type="dataset", revision=commit)
            )
        entries = [
            RepoEntry(e.path, int(e.size), e.lfs.sha256 if e.lfs else None)
            for e in tree
            if isinstance(e, RepoFile)
        ]
        return commit, entries

    def remote_file(self, repo_id: str, commit: str, entry: RepoEntry) -> RemoteFile:
        """Where to download ``entry`` from, at ``commit``."""
        from huggingface_hub import hf_hub_url
        from huggingface_hub.utils import build_hf_headers

        url = hf_hub_url(
            repo_id, entry.path, repo_type="dataset", revision=commit, endpoint=self.endpoint
        )
        headers = build_hf_headers(token=self.token)
        return RemoteFile(url, PurePosixPath(entry.path).name, entry.size, entry.sha256, headers)


def _kind(path: str) -> str:
    suffix = PurePosixPath(path).suffix.lower()
    if suffix == ".parquet":
        return "parquet"
    if suffix == ".zip":
        return "zip"
    return "image" if is_image_name(path) else "other"


def _scratch_name(path: str) -> str:
    return path.replace("/", "__")


def convert_parquet(
    path: Path,
    writer: SourceWriter,
    leaf: str,
    column: str = IMAGE_COLUMN,
    max_member_bytes: int | None = MAX_MEMBER_BYTES,
) -> None:
    """Offer the images of a parquet shard's ``column`` (``{bytes, path}`` structs or bytes)."""
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise UserError(
            f"{path.name}: reading parquet shards needs pyarrow ({exc}); "
            "pip install -e '.[realdata]'"
        ) from exc
    try:
        shard = pq.ParquetFile(path)
    except Exception as exc:
        raise UserError(f"{path}: not a readable parquet file ({exc}); run again") from exc
    if column not in shard.schema_arrow.names:
        raise UserError(
            f"{path.name}: no '{column}' column (columns: {', '.join(shard.schema_arrow.names)})"
        )
    stem = PurePosixPath(path.name).stem
    row = 0
    for batch in shard.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=[column]):
        for cell in batch.column(0).to_pylist():
            number, row = row, row + 1
            data, name = cell, None
            if isinstance(cell, dict):
                data, name = cell.get("bytes"), cell.get("path")
            if not (name and is_image_name(name)):
                name = f"{stem}/{number:07d}.png"
            size = len(data) if data else None
            label = f"{path.name} row {number}"
            if not writer.needs_bytes(leaf, name, size, max_member_bytes, label):
                continue
            if not data:
                writer.report.skip(UNREADABLE, f"{label} (no image bytes)")
                continue
            writer.offer(leaf, name, data)
        if writer.is_full(leaf):
            break


def _ahead(
    items: list[RepoEntry], fetch: Callable[[RepoEntry], Path], window: int
) -> Iterator[tuple[RepoEntry, Future[Path]]]:
    """``(entry, future of its download)`` in order, at most ``window`` downloads ahead."""
    with ThreadPoolExecutor(max_workers=window) as pool:
        pending: list[tuple[RepoEntry, Future[Path]]] = []
        queue = iter(items)
        try:
            for entry in queue:
                pending.append((entry, pool.submit(fetch, entry)))
                if len(pending) >= window:
                    yield pending.pop(0)
            while pending:
                yield pending.pop(0)
        finally:
            for _, future in pending:
                future.cancel()


def convert_hf_dataset(
    repo_id: str,
    files: HubDatasetFiles,
    downloader: Downloader,
    scratch: Path,
    writer: SourceWriter,
    leaf: str,
    keep_downloads: bool = False,
    max_member_bytes: int | None = MAX_MEMBER_BYTES,
) -> str:
    """Convert every image of the dataset repository ``repo_id``; return the commit read."""
    commit, entries = files.list_files(repo_id)
    entries = sorted(entries, key=lambda e: e.path)
    by_kind: dict[str, list[RepoEntry]] = {}
    for entry in entries:
        by_kind.setdefault(_kind(entry.path), []).append(entry)
    if not any(by_kind.get(k) for k in ("image", "zip", "parquet")):
        raise UserError(
            f"Hugging Face dataset {repo_id}@{commit}: no image files, zips or parquet shards "
            f"among its {len(entries)} files"
        )
    if by_kind.get("other"):
        writer.report.skip(NOT_IMAGE, by_kind["other"][0].path, len(by_kind["other"]))

    def fetch(entry: RepoEntry) -> Path:
        remote = files.remote_file(repo_id, commit, entry)
        return downloader.fetch(remote, scratch / _scratch_name(entry.path))

    def done_with(path: Path) -> None:
        if not keep_downloads:
            downloader.meter.remove_file(path)

    images = by_kind.get("image", [])
    top = common_folder([e.path for e in images])
    todo = []
    for entry in images:
        relative = entry.path[len(top) + 1 :] if top else entry.path
        if writer.needs_bytes(leaf, relative, entry.size, max_member_bytes, entry.path):
            todo.append((entry, relative))
    if writer.max_images is not None:  # fetch no more than the cap leaves room for
        room = max(0, writer.max_images - writer.accepted[leaf])
        for entry, _ in todo[room:]:
            writer.report.skip(BEYOND_CAP, entry.path)
        todo = todo[:room]
    relative_of = {e.path: r for e, r in todo}
    for entry, future in _ahead([e for e, _ in todo], fetch, AHEAD):
        path = future.result()
        writer.offer(leaf, relative_of[entry.path], path.read_bytes())
        done_with(path)
    for kind, convert in (("zip", convert_zip), ("parquet", convert_parquet)):
        for entry in by_kind.get(kind, []):
            if writer.is_full(leaf):
                break
            path = fetch(entry)
            convert(path, writer, leaf, max_member_bytes=max_member_bytes)
            writer.pool.drain()
            done_with(path)
    return commit
