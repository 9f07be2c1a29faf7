"""A local stand-in for the Hugging Face Hub, and generated split tar.gz archives.

The server speaks the part of the Hub API that ``huggingface_hub`` uses here:

* ``GET /api/datasets/{repo}/revision/{rev}``: repository info with the commit ``sha``;
* ``GET /api/datasets/{repo}/tree/{rev}/{path}?recursive=...``: the listing, ``page_size``
  entries per page with a ``Link: <...>; rel="next"`` header (cursor pagination);
* ``HEAD``/``GET /datasets/{repo}/resolve/{rev}/{path}``: the file, with ``X-Repo-Commit``,
  ``ETag``, ``Content-Length``, ``Accept-Ranges`` and ``Range`` support (206, ``If-Range``).

Errors carry the Hub's ``X-Error-Code`` header (404 ``EntryNotFound`` for any folder or file
the repository does not hold, as on the real Hub). Hooks let tests slow a file down, make the
first requests of a file fail or drop the connection mid-body, and see every request made
with the status it got.

:func:`sentry_hub` fills a stand-in with all nine Sentry sources of the catalog, laid out as
on the real ``InfImagine/FakeImageDataset`` (see :data:`SENTRY_LAYOUT`), with tiny images.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import threading
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

import numpy as np
from PIL import Image

COMMIT = "c0ffee" + "0" * 34


def noise_png(seed: int, size: tuple[int, int] = (40, 32)) -> bytes:
    """A small PNG of random pixels (incompressible, so archive bytes track member count)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def tar_gz(members: Sequence[tuple[str, bytes]], extra: Sequence[tarfile.TarInfo] = ()) -> bytes:
    """A .tar.gz holding ``members`` (name, data) in order, then ``extra`` entries."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.GNU_FORMAT) as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            archive.addfile(info, io.BytesIO(data))
        for info in extra:
            archive.addfile(info)
    return buffer.getvalue()


def split_bytes(data: bytes, parts: int) -> list[bytes]:
    """``data`` in ``parts`` pieces of (nearly) equal size, like ``split -n``."""
    size = -(-len(data) // parts)
    return [data[i * size : (i + 1) * size] for i in range(parts)]


def part_names(base: str, count: int, width: int) -> list[str]:
    """``base.0``... (width 1) or ``base.00``... (width 2)."""
    return [f"{base}.{i:0{width}d}" for i in range(count)]


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    status: int | None = None

    @property
    def repo_path(self) -> str | None:
        """The folder (tree API) or file (resolve URL) asked for, else None."""
        path = unquote(urlsplit(self.path).path)
        for marker in ("/tree/", "/resolve/"):
            if marker in path:
                return path.split(marker, 1)[1].partition("/")[2]
        return None

    @property
    def kind(self) -> str:
        path = urlsplit(self.path).path
        return "tree" if "/tree/" in path else "resolve" if "/resolve/" in path else "other"


@dataclass
class FakeHub:
    """Files of one dataset repository; ``serve()`` starts the server on 127.0.0.1."""

    repo_id: str = "InfImagine/FakeImageDataset"
    files: dict[str, bytes] = field(default_factory=dict)
    commit: str = COMMIT
    page_size: int = 4
    chunk_delay: dict[str, float] = field(default_factory=dict)  # path -> seconds per 4 KB
    fail_first: dict[str, int] = field(default_factory=dict)  # path -> 500s to send first
    drop_first: dict[str, int] = field(default_factory=dict)  # path -> bodies to cut short
    requests: list[Request] = field(default_factory=list)
    ignore_range: bool = False

    def add(self, path: str, data: bytes) -> None:
        self.files[path] = data

    def add_parts(self, folder: str, base: str, data: bytes, count: int, width: int) -> list[str]:
        """Split ``data`` into ``count`` parts named ``folder/base.<i>``; return their paths."""
        names = part_names(base, count, width)
        for name, piece in zip(names, split_bytes(data, count), strict=True):
            self.add(f"{folder}/{name}", piece)
        return [f"{folder}/{n}" for n in names]

    def downloads(self, path: str | None = None) -> list[Request]:
        """GET requests on resolve URLs (of ``path``, if given)."""
        return [
            r
            for r in self.requests
            if r.method == "GET"
            and "/resolve/" in r.path
            and (path is None or r.path.endswith("/" + quote(path)))
        ]

    def serve(self) -> ServedHub:
        return ServedHub(self)


def _tree_entries(hub: FakeHub, folder: str, recursive: bool) -> list[dict]:
    prefix = folder.rstrip("/") + "/" if folder else ""
    entries, folders = [], set()
    for path in sorted(hub.files):
        if not path.startswith(prefix):
            continue
        rest = path[len(prefix) :].split("/")
        for depth in range(1, len(rest)):
            sub = prefix + "/".join(rest[:depth])
            if (recursive or depth == 1) and sub not in folders:
                folders.add(sub)
                entries.append({"type": "directory", "oid": "d" * 40, "size": 0, "path": sub})
        if recursive or len(rest) == 1:
            data = hub.files[path]
            sha = hashlib.sha256(data).hexdigest()
            entries.append(
                {
                    "type": "file",
                    "oid": hashlib.sha1(data).hexdigest(),
                    "size": len(data),
                    "path": path,
                    "lfs": {"oid": sha, "size": len(data), "pointerSize": 134},
                }
            )
    return entries


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _record(self) -> None:
        self._current = Request(self.command, self.path, dict(self.headers.items()))
        self.hub.requests.append(self._current)

    def send_response(self, code: int, message: str | None = None) -> None:
        current = getattr(self, "_current", None)
        if current is not None and current.status is None:
            current.status = code
        super().send_response(code, message)

    def _error(self, status: int, code: str, message: str = "") -> None:
        body = json.dumps({"error": message or code}).encode()
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj: object, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _repo_rest(self, path: str, prefix: str) -> str | None:
        """The part of ``path`` after ``prefix + repo_id + '/'``, or None for another repo."""
        head = f"{prefix}{self.hub.repo_id}"
        if path == head:
            return ""
        if not path.startswith(head + "/"):
            return None
        return path[len(head) + 1 :]

    def _check_revision(self, revision: str) -> bool:
        if revision in ("main", self.hub.commit):
            return True
        self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return False

    def do_GET(self) -> None:
        self._route()

    def do_HEAD(self) -> None:
        self._route()

    def _route(self) -> None:
        self._record()
        url = urlsplit(self.path)
        path = unquote(url.path)
        query = parse_qs(url.query)
        rest = self._repo_rest(path, "/api/datasets/")
        if rest is not None:
            return self._api(rest, query)
        rest = self._repo_rest(path, "/datasets/")
        if rest is not None and rest.startswith("resolve/"):
            revision, _, file_path = rest[len("resolve/") :].partition("/")
            if self._check_revision(revision):
                self._resolve(file_path)
            return None
        self._error(404, "RepoNotFound", "Repository not found")
        return None

    def _api(self, rest: str, query: dict[str, list[str]]) -> None:
        if rest.startswith("revision/"):
            revision = rest[len("revision/") :]
            if self._check_revision(revision):
                self._json({"id": self.hub.repo_id, "sha": self.hub.commit, "private": False})
            return
        if rest.startswith("tree/"):
            revision, _, folder = rest[len("tree/") :].partition("/")
            if not self._check_revision(revision):
                return
            recursive = query.get("recursive", ["false"])[0].lower() in ("true", "1")
            entries = _tree_entries(self.hub, folder, recursive)
            if not entries:
                self._error(404, "EntryNotFound", f"{folder} does not exist")
                return
            start = int(query.get("cursor", ["0"])[0])
            page = entries[start : start + self.hub.page_size]
            headers = {}
            if start + self.hub.page_size < len(entries):
                host = f"http://{self.headers['Host']}"
                tree = f"/api/datasets/{self.hub.repo_id}/tree/{revision}/{quote(folder)}"
                nxt = f"{host}{tree}?recursive={str(recursive).lower()}&expand=false"
                headers["Link"] = f'<{nxt}&cursor={start + self.hub.page_size}>; rel="next"'
            self._json(page, headers)
            return
        self._error(404, "RepoNotFound", "Repository not found")

    def _resolve(self, file_path: str) -> None:
        data = self.hub.files.get(file_path)
        if data is None:
            self._error(404, "EntryNotFound", f"{file_path} not found")
            return
        etag = '"' + hashlib.sha256(data).hexdigest() + '"'
        if self.command == "GET" and self.hub.fail_first.get(file_path, 0) > 0:
            self.hub.fail_first[file_path] -= 1
            self._error(500, "ServerError", "try again")
            return
        start = 0
        ranged = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if ranged and not self.hub.ignore_range and (if_range is None or if_range == etag):
            start = int(ranged.split("=", 1)[1].split("-", 1)[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("X-Repo-Commit", self.hub.commit)
        self.send_header("ETag", etag)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(data) - start))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        if self.command == "HEAD":
            return
        body = data[start:]
        if self.hub.drop_first.get(file_path, 0) > 0:
            self.hub.drop_first[file_path] -= 1
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        delay = self.hub.chunk_delay.get(file_path, 0.0)
        try:
            for offset in range(0, len(body), 4096):
                self.wfile.write(body[offset : offset + 4096])
                if delay:
                    self.wfile.flush()
                    time.sleep(delay)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class ServedHub:
    """A running :class:`FakeHub`; a context manager. ``endpoint`` is its base URL."""

    def __init__(self, hub: FakeHub) -> None:
        handler = type("Handler", (_Handler,), {"hub": hub})
        self.hub = hub
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> ServedHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def members_within(archive: bytes, cut: int) -> tuple[list[str], int]:
    """Oracle for a .tar.gz cut after ``cut`` bytes: the members whose data survive whole,
    and 1 if the cut falls inside a member (header or data), else 0."""
    available = len(zlib.decompressobj(wbits=31).decompress(archive[:cut]))
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(archive))) as t:
        infos = t.getmembers()
    whole = [i.name for i in infos if i.offset_data + i.size <= available]
    partial = int(any(i.offset < available < i.offset_data + i.size for i in infos))
    return whole, partial


# --- The stand-in Sentry repository -----------------------------------------------------------


@dataclass(frozen=True)
class StandInArchive:
    """One archive of the stand-in repository, laid out as on the real Hub.

    ``folder``: the Hub folder holding the parts; ``parts``: how many (0: one un-numbered
    ``.tar.gz``); ``width``: digits of the part suffix (1: ``.0``, 2: ``.00``); ``leaves``: the
    leaf folders inside the tar (kept by the catalog or not) and how many images each holds.
    """

    folder: str
    base: str
    parts: int
    width: int
    leaves: tuple[tuple[str, int], ...]

    def part_paths(self) -> list[str]:
        if self.parts == 0:
            return [f"{self.folder}/{self.base}"]
        return [f"{self.folder}/{name}" for name in part_names(self.base, self.parts, self.width)]


def _sg3(*names: str, images: int = 3) -> tuple[tuple[str, int], ...]:
    return tuple((f"stylegan3-{n}", images) for n in names)


# The real layout (issue 11): parts sit directly in the source folder and the leaf folders exist
# only inside the tar, except for the two 1M train sets, whose parts sit in their leaf's folder.
# Facts: SDv15-CC30K has parts .0-.4 and two leaves (the catalog keeps SDv15R-dpmsolver-25-15K),
# SDv21-CC15K .0-.2, Midjourney one un-numbered .tar.gz; the leaves inside IF-CC95K and
# stylegan3-60K follow the dataset card (six each, four kept). The other part counts and suffix
# widths are the stand-in's own choice (small; some ".00"-padded, .10 after .9 in one).
_SG3_ALL = ("r-afhqv2-512x512", "r-ffhqu-1024x1024", "r-metfaces-1024x1024")
_SG3_ALL += ("t-afhqv2-512x512", "t-ffhqu-1024x1024", "t-metfaces-1024x1024")
_IF_VAL = ("ddim-25", "ddim-50", "ddpm-50", "dpmsolver++-10", "dpmsolver++-25", "dpmsolver++-50")
SENTRY_LAYOUT: tuple[StandInArchive, ...] = (
    StandInArchive(
        "ImageData/train/IFv1-CC1M/IFv1-dpmsolver++-50-1M",
        "IFv1-dpmsolver++-50-1M.tar.gz",
        12,
        2,
        (("IFv1-dpmsolver++-50-1M", 40),),
    ),
    StandInArchive(
        "ImageData/train/SDv15R-CC1M/SDv15R-dpmsolver-25-1M",
        "SDv15R-dpmsolver-25-1M.tar.gz",
        14,
        2,
        (("SDv15R-dpmsolver-25-1M", 42),),
    ),
    StandInArchive(
        "ImageData/train/stylegan3-80K", "stylegan3-80K.tar.gz", 11, 1, _sg3(*_SG3_ALL, images=4)
    ),
    StandInArchive(
        "ImageData/val/IF-CC95K",
        "IF-CC95K.tar.gz",
        6,
        2,
        tuple((f"IF-{s}-15K", 3) for s in _IF_VAL),
    ),
    StandInArchive(
        "ImageData/val/Midjourneyv5-5K", "Midjourneyv5-5K.tar.gz", 0, 0, (("Midjourneyv5-5K", 4),)
    ),
    StandInArchive(
        "ImageData/val/SDv15-CC30K",
        "SDv15-CC30K.tar.gz",
        5,
        1,
        (("SDv15-dpmsolver-25-15K", 5), ("SDv15R-dpmsolver-25-15K", 5)),
    ),
    StandInArchive(
        "ImageData/val/SDv21-CC15K", "SDv21-CC15K.tar.gz", 3, 1, (("SDv2-dpmsolver-25-10K", 9),)
    ),
    StandInArchive(
        "ImageData/val/cogview2-22K", "cogview2-22K.tar.gz", 4, 1, (("cogview2-22K", 8),)
    ),
    StandInArchive("ImageData/val/stylegan3-60K", "stylegan3-60K.tar.gz", 4, 1, _sg3(*_SG3_ALL)),
)
# Other files of the real repository, listed but never fetched.
_OTHER_FILES = {
    ".gitattributes": b"*.gz* filter=lfs diff=lfs merge=lfs -text\n",
    "README.md": b"# FakeImageDataset (stand-in)\n",
    "MetaData/train/IF-CC1M.csv": b"path,label\n",
    "MetaData/val/SDv15-CC30K.csv": b"path,label\n",
}


def layout_members(archive: StandInArchive) -> list[tuple[str, bytes]]:
    """The archive's images, ``<leaf>/<n>.png``, the leaves taking turns (so that the first
    parts of a multi-leaf archive hold some of every leaf)."""
    seed = int.from_bytes(hashlib.sha256(archive.base.encode()).digest()[:4], "big")
    members = []
    for i in range(max(n for _, n in archive.leaves)):
        for j, (leaf, count) in enumerate(archive.leaves):
            if i < count:
                members.append((f"{leaf}/{i:05d}.png", noise_png(seed + 1000 * j + i)))
    return members


@cache
def _layout_archive(archive: StandInArchive) -> bytes:
    return tar_gz(layout_members(archive))


@dataclass
class SentryStandIn:
    """A :class:`FakeHub` holding all nine sources, and what each archive holds."""

    hub: FakeHub
    archives: dict[str, bytes]  # Hub folder -> the whole archive (before splitting)
    layout: dict[str, StandInArchive]  # Hub folder -> its layout

    def parts(self, folder: str) -> list[str]:
        return self.layout[folder].part_paths()


def sentry_hub(
    extra: Mapping[str, Sequence[tuple[str, bytes]]] | None = None,
    extra_infos: Mapping[str, Sequence[tarfile.TarInfo]] | None = None,
    page_size: int = 4,
) -> SentryStandIn:
    """A stand-in repository with every archive of :data:`SENTRY_LAYOUT`.

    ``extra``/``extra_infos`` (Hub folder -> members / tar entries) are appended to that
    folder's archive, after its images.
    """
    hub = FakeHub(page_size=page_size)
    for path, data in _OTHER_FILES.items():
        hub.add(path, data)
    archives, layout = {}, {}
    for archive in SENTRY_LAYOUT:
        added = list((extra or {}).get(archive.folder, ()))
        infos = list((extra_infos or {}).get(archive.folder, ()))
        if added or infos:
            data = tar_gz([*layout_members(archive), *added], infos)
        else:
            data = _layout_archive(archive)
        if archive.parts == 0:
            hub.add(f"{archive.folder}/{archive.base}", data)
        else:
            hub.add_parts(archive.folder, archive.base, data, archive.parts, archive.width)
        archives[archive.folder] = data
        layout[archive.folder] = archive
    return SentryStandIn(hub, archives, layout)
