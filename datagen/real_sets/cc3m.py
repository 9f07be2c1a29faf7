"""CC3M reals: img2dataset over the Conceptual Captions TSVs, chunk by chunk.

The TSVs (``caption<TAB>url``, no header row) are read from a local path or fetched. URLs
are handed to img2dataset in chunks (one img2dataset shard each) with re-encoding disabled,
so it stores the originals; they then go through the one conversion like every other image
and the chunk's downloads are deleted. Chunks continue until the source has its target
number of images. A finished chunk is recorded, so an interrupted run resumes at the first
unfinished one (img2dataset resumes an unfinished shard by itself).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from datagen.real_sets import import_failure
from datagen.source_writer import BEYOND_CAP, SourceWriter
from rfd_common.errors import UserError
from rfd_common.files import atomic_write_json, atomic_write_text


@dataclass(frozen=True)
class Cc3mOptions:
    """``chunk_urls`` URLs per img2dataset run; its threads, timeout and per-URL retries."""

    chunk_urls: int = 10_000
    threads: int = 64
    timeout: int = 10
    retries: int = 1
    processes: int = 1


def is_url(text: str) -> bool:
    return urlsplit(text).scheme in ("http", "https")


def read_urls(path: Path) -> list[str | None]:
    """The URL of every line (None for a line without one), numbered from 0.

    Conceptual Captions TSVs have no header row; a first line that looks like one is skipped.
    """
    urls: list[str | None] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f):
                fields = line.rstrip("\r\n").split("\t")
                url = fields[-1].strip() if len(fields) >= 2 else ""
                if number == 0 and not is_url(url) and url.lower() == "url":
                    continue
                urls.append(url if is_url(url) else None)
    except OSError as exc:
        raise UserError(f"{path}: cannot read the TSV ({exc.strerror or exc})") from exc
    if not any(urls):
        raise UserError(f"{path}: no 'caption<TAB>url' lines found")
    return urls


def output_relative(line: int) -> str:
    """The JPEG of TSV line ``line`` below the leaf folder (10,000 per subfolder)."""
    return f"{line // 10_000:04d}/{line:07d}.jpg"


def _import_img2dataset():  # type: ignore[no-untyped-def]
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no network call at import
    os.environ.setdefault("WANDB_MODE", "disabled")
    try:
        import img2dataset
    except ImportError as exc:
        raise UserError(import_failure("CC3M's img2dataset", "img2dataset", exc)) from exc
    return img2dataset


def img2dataset_problems() -> list[str]:
    """What would stop a CC3M download now (img2dataset's import); [] if nothing."""
    try:
        _import_img2dataset()
    except UserError as exc:
        return [str(exc)]
    return []


def run_img2dataset(
    urls: list[tuple[int, str]], folder: Path, options: Cc3mOptions, quiet: bool = False
) -> None:
    """Download ``(line, url)`` pairs as originals into ``folder`` (resumes its own shard)."""
    img2dataset = _import_img2dataset()
    folder.mkdir(parents=True, exist_ok=True)
    url_list = folder.parent / f"{folder.name}.jsonl"
    atomic_write_text(url_list, "".join(json.dumps({"url": u, "line": i}) + "\n" for i, u in urls))
    previous = signal.getsignal(signal.SIGINT)
    try:
        with contextlib.ExitStack() as stack:
            if quiet:
                devnull = stack.enter_context(open(os.devnull, "w"))
                stack.enter_context(contextlib.redirect_stdout(devnull))
                stack.enter_context(contextlib.redirect_stderr(devnull))
            img2dataset.download(
                url_list=str(url_list),
                output_folder=str(folder / "images"),
                input_format="jsonl",
                url_col="url",
                save_additional_columns=["line"],
                output_format="files",
                resize_mode="no",
                disable_all_reencoding=True,
                encode_format="jpg",
                processes_count=options.processes,
                thread_count=options.threads,
                number_sample_per_shard=max(len(urls), 1),
                timeout=options.timeout,
                retries=options.retries,
                extract_exif=False,
                compute_hash=None,
                enable_wandb=False,
                incremental_mode="incremental",
            )
    except SystemExit as exc:  # img2dataset's SIGINT handler exits with status 0
        raise KeyboardInterrupt from exc
    finally:
        signal.signal(signal.SIGINT, previous)


def downloaded_images(folder: Path) -> Iterator[tuple[int, Path]]:
    """``(TSV line, original image)`` for every URL img2dataset fetched, in line order."""
    found = []
    for meta_path in (folder / "images").glob("*/*.json"):
        try:
            meta = json.loads(meta_path.read_text())
        except (json.JSONDecodeError, OSError):
            continue
        image = meta_path.with_suffix(".jpg")
        if meta.get("status") == "success" and image.is_file() and meta.get("line") is not None:
            found.append((int(meta["line"]), image))
    yield from sorted(found)


class ChunkLog:
    """Which chunks of a CC3M TSV were converted whole (``key``: the TSV and preprocessing).

    A chunk cut by the image target is not recorded: a larger target later fetches it again.
    """

    def __init__(self, path: Path, key: str) -> None:
        self.path = path
        self.key = key
        self.done: set[int] = set()
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError, KeyError):
            state = json.loads(path.read_text())
            if state["fingerprint"] == key:
                self.done = set(state["done"])

    def mark(self, chunk: int) -> None:
        self.done.add(chunk)
        atomic_write_json(self.path, {"fingerprint": self.key, "done": sorted(self.done)})


def build_cc3m(
    urls: list[str | None],
    leaf: str,
    writer: SourceWriter,
    scratch: Path,
    log: ChunkLog,
    options: Cc3mOptions,
    keep_downloads: bool = False,
    quiet: bool = False,
) -> None:
    """Fill ``writer`` chunk by chunk until it is full or the URLs run out."""
    size = options.chunk_urls
    for chunk in range((len(urls) + size - 1) // size):
        if writer.is_full(leaf):
            break
        lines = range(chunk * size, min(len(urls), (chunk + 1) * size))
        if chunk in log.done:  # converted by an earlier run: take its images as they are
            for line in lines:
                relative = output_relative(line)
                if urls[line] and writer.output_exists(leaf, relative):
                    writer.offer(leaf, relative, None)
            continue
        folder = scratch / f"chunk-{chunk:05d}"
        pairs = [(line, urls[line]) for line in lines if urls[line]]
        run_img2dataset(pairs, folder, options, quiet)  # type: ignore[arg-type]
        images = list(downloaded_images(folder))
        if pairs and not images:
            raise UserError(
                f"CC3M chunk {chunk}: none of its {len(pairs)} URLs could be downloaded; "
                "check the network and run again"
            )
        capped_before = writer.report.skipped[BEYOND_CAP]
        for line, image in images:
            relative = output_relative(line)
            if writer.wants(leaf, relative):
                data = None if writer.output_exists(leaf, relative) else image.read_bytes()
                writer.offer(leaf, relative, data)
        writer.pool.drain()
        if writer.report.skipped[BEYOND_CAP] == capped_before:  # every image of it taken
            log.mark(chunk)
        if not keep_downloads:
            shutil.rmtree(folder, ignore_errors=True)
            folder.with_suffix(".jsonl").unlink(missing_ok=True)
