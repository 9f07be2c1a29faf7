"""Resumable downloads against the local server: ranges, retries, checks, redirects."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from datagen.download import (
    INCOMPLETE_SUFFIX,
    CancelledError,
    Downloader,
    DownloadError,
    RemoteFile,
)
from tests.datagen.fake_hub import FakeHub, ServedHub

DATA = bytes(range(256)) * 1000  # 256 KB
PATH = "folder/file.bin"


@pytest.fixture
def served() -> Iterator[ServedHub]:
    hub = FakeHub(files={PATH: DATA})
    with hub.serve() as running:
        yield running


def remote(served: ServedHub, sha: bool = True, **kwargs: object) -> RemoteFile:
    url = f"{served.endpoint}/datasets/{served.hub.repo_id}/resolve/main/{PATH}"
    digest = hashlib.sha256(DATA).hexdigest() if sha else None
    return RemoteFile(url, "file.bin", len(DATA), digest, **kwargs)  # type: ignore[arg-type]


def downloader(**kwargs: object) -> tuple[Downloader, list[float]]:
    waits: list[float] = []
    d = Downloader(retries=3, backoff=0.01, timeout=5, progress=False, sleep=waits.append)
    for key, value in kwargs.items():
        setattr(d, key, value)
    return d, waits


def test_download_writes_the_whole_file_under_its_name(served: ServedHub, tmp_path: Path) -> None:
    d, _ = downloader()
    dest = d.fetch(remote(served), tmp_path / "x.bin")
    assert dest.read_bytes() == DATA
    assert not (tmp_path / ("x.bin" + INCOMPLETE_SUFFIX)).exists()
    assert d.bytes_downloaded == len(DATA) and d.meter.current == len(DATA)
    # A whole copy is used as it is: no second request.
    before = len(served.hub.requests)
    d.fetch(remote(served), dest)
    assert len(served.hub.requests) == before


def test_a_partial_file_is_resumed_with_a_range_request(served: ServedHub, tmp_path: Path) -> None:
    dest = tmp_path / "x.bin"
    (tmp_path / ("x.bin" + INCOMPLETE_SUFFIX)).write_bytes(DATA[:100_000])
    d, _ = downloader()
    d.fetch(remote(served), dest)
    assert dest.read_bytes() == DATA
    (request,) = served.hub.downloads(PATH)
    assert request.headers["Range"] == "bytes=100000-"
    assert d.bytes_downloaded == len(DATA) - 100_000


def test_server_errors_and_dropped_connections_are_retried(
    served: ServedHub, tmp_path: Path
) -> None:
    served.hub.fail_first[PATH] = 2
    served.hub.drop_first[PATH] = 1
    d, waits = downloader()
    d.fetch(remote(served), tmp_path / "x.bin")
    assert (tmp_path / "x.bin").read_bytes() == DATA
    gets = served.hub.downloads(PATH)
    assert len(gets) == 4  # two 500s, one cut short, one resumed
    assert "Range" not in gets[2].headers and gets[3].headers["Range"].startswith("bytes=")
    assert waits == [0.01, 0.02, 0.04]


def test_a_checksum_mismatch_fails_and_leaves_no_file(served: ServedHub, tmp_path: Path) -> None:
    bad = RemoteFile(remote(served).url, "file.bin", len(DATA), "0" * 64)
    d, _ = downloader()
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        d.fetch(bad, tmp_path / "x.bin")
    assert not (tmp_path / "x.bin").exists()
    assert len(served.hub.downloads(PATH)) == d.retries + 1


def test_a_server_ignoring_ranges_restarts_cleanly(served: ServedHub, tmp_path: Path) -> None:
    served.hub.ignore_range = True
    (tmp_path / ("x.bin" + INCOMPLETE_SUFFIX)).write_bytes(b"garbage" * 10)
    d, _ = downloader()
    d.fetch(remote(served), tmp_path / "x.bin")
    assert (tmp_path / "x.bin").read_bytes() == DATA


def test_not_found_is_reported_at_once(served: ServedHub, tmp_path: Path) -> None:
    missing = RemoteFile(remote(served).url.replace("file.bin", "nope.bin"), "nope.bin")
    d, waits = downloader()
    with pytest.raises(DownloadError, match="HTTP 404"):
        d.fetch(missing, tmp_path / "nope.bin")
    assert waits == []


def test_cancel_stops_a_download(served: ServedHub, tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    d, _ = downloader()
    with pytest.raises(CancelledError):
        d.fetch(remote(served), tmp_path / "x.bin", cancel)


class _Redirect(BaseHTTPRequestHandler):
    target = ""
    seen: ClassVar[list[dict[str, str]]] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.seen.append(dict(self.headers.items()))
        self.send_response(302)
        self.send_header("Location", self.target)
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_redirects_are_followed_without_leaking_authorization(
    served: ServedHub, tmp_path: Path
) -> None:
    handler = type("H", (_Redirect,), {"target": remote(served).url, "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/start"
        auth = {"authorization": "Bearer secret"}
        d, _ = downloader()
        d.fetch(RemoteFile(url, "x.bin", len(DATA), headers=auth), tmp_path / "x.bin")
    finally:
        server.shutdown()
        server.server_close()
    assert (tmp_path / "x.bin").read_bytes() == DATA
    assert {k.lower(): v for k, v in handler.seen[0].items()}["authorization"] == "Bearer secret"
    (request,) = served.hub.downloads(PATH)
    assert "authorization" not in {k.lower() for k in request.headers}


class _ShortBodies(BaseHTTPRequestHandler):
    """Serves ``DATA`` (ranges honoured, no ETag); the first ``cut`` responses announce their
    whole ``Content-Length`` but close after ``keep`` bytes of it."""

    protocol_version = "HTTP/1.1"
    cut = 0
    keep = 1000
    seen: ClassVar[list[str | None]] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        type(self).seen.append(self.headers.get("Range"))
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=", 1)[1].split("-", 1)[0])
        if start >= len(DATA):
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(DATA)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = DATA[start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(DATA) - 1}/{len(DATA)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if type(self).cut > 0:
            type(self).cut -= 1
            body = body[: self.keep]
            self.close_connection = True
        self.wfile.write(body)


@pytest.fixture
def short_server() -> Iterator[tuple[type[_ShortBodies], str]]:
    handler = type("H", (_ShortBodies,), {"cut": 0, "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield handler, f"http://127.0.0.1:{server.server_address[1]}/afhq_v2.zip"
    finally:
        server.shutdown()
        server.server_close()


def test_a_body_shorter_than_announced_is_resumed_not_kept(
    short_server: tuple[type[_ShortBodies], str], tmp_path: Path
) -> None:
    """Size unknown to the caller (an AFHQ zip, a CC3M TSV): the server's length decides."""
    handler, url = short_server
    handler.cut = 1
    d, waits = downloader()
    dest = d.fetch(RemoteFile(url, "afhq_v2.zip"), tmp_path / "afhq_v2.zip")
    assert dest.read_bytes() == DATA
    assert handler.seen == [None, "bytes=1000-"]  # cut after 1000 bytes, resumed from there
    assert len(waits) == 1
    # Recorded as whole: a rerun takes it without a request.
    d.fetch(RemoteFile(url, "afhq_v2.zip"), dest)
    assert len(handler.seen) == 2


def test_a_body_always_cut_short_fails_and_is_never_renamed(
    short_server: tuple[type[_ShortBodies], str], tmp_path: Path
) -> None:
    handler, url = short_server
    handler.cut = 100
    d, _ = downloader()
    dest = tmp_path / "afhq_v2.zip"
    with pytest.raises(DownloadError, match=r"connection closed after 1000 of \d+ bytes"):
        d.fetch(RemoteFile(url, "afhq_v2.zip"), dest)
    assert not dest.exists()
    partial = tmp_path / ("afhq_v2.zip" + INCOMPLETE_SUFFIX)
    assert partial.read_bytes() == DATA[: 1000 * (d.retries + 1)]  # kept for the next run
    # The next run, once the server behaves, continues from there.
    handler.cut = 0
    d.fetch(RemoteFile(url, "afhq_v2.zip"), dest)
    assert dest.read_bytes() == DATA and not partial.exists()
    assert handler.seen[-1] == f"bytes={1000 * (d.retries + 1)}-"


def test_a_cut_file_an_older_version_kept_is_completed(
    short_server: tuple[type[_ShortBodies], str], tmp_path: Path
) -> None:
    """A file under its final name without a record that it is whole is not trusted."""
    handler, url = short_server
    dest = tmp_path / "GCC-training.tsv"
    dest.write_bytes(DATA[:5000])
    d, _ = downloader()
    d.fetch(RemoteFile(url, dest.name), dest)
    assert dest.read_bytes() == DATA
    assert handler.seen == ["bytes=5000-"]
    # A whole file without the record costs one request (answered 416), not a download.
    (tmp_path / "other.zip").write_bytes(DATA)
    d.fetch(RemoteFile(url, "other.zip"), tmp_path / "other.zip")
    assert handler.seen[-1] == f"bytes={len(DATA)}-"
    assert (tmp_path / "other.zip").read_bytes() == DATA
    assert d.bytes_downloaded == len(DATA) - 5000
