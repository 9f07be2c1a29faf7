"""Resumable HTTP downloads: ranged requests, retries, size and sha256 checks, atomic rename.

A file is written to ``<name>.incomplete`` and renamed to ``<name>`` once its size (and sha256,
when known) check out, so a file under its final name is always whole. The size is the one the
caller knows or, failing that, the one the server announces (``Content-Length``, or the total
of ``Content-Range``): a body that ends before its announced length is a transient failure,
retried from where it stopped, never a finished file. A file fetched without a known size gets
a ``<name>.whole`` record beside it; a file under its final name without one (left by an older
version, possibly cut short) is resumed like a partial download. After an interruption the
download continues from the ``.incomplete`` file with a ``Range`` request (``If-Range`` guards
against a file that changed meanwhile). Redirects are followed by hand so that an
``Authorization`` header never leaves the origin it was meant for.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from tqdm.auto import tqdm

from rfd_common.errors import UserError
from rfd_common.files import atomic_write_json

INCOMPLETE_SUFFIX = ".incomplete"
WHOLE_SUFFIX = ".whole"
_CHUNK = 1 << 20
_MAX_REDIRECTS = 10
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class DownloadError(UserError):
    """A download that failed for good (after retries, or on a permanent HTTP error)."""


class CancelledError(Exception):
    """The download was cancelled through its ``cancel`` event."""


class _RetryError(Exception):
    """A transient failure: try again (from where the partial file stands)."""


@dataclass(frozen=True)
class RemoteFile:
    """What to fetch: URL, expected size and sha256 when known, a name for messages."""

    url: str
    name: str
    size: int | None = None
    sha256: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


class ScratchMeter:
    """Bytes of downloaded files currently on disk, and the peak; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.current = 0
        self.peak = 0

    def add(self, nbytes: int) -> None:
        with self._lock:
            self.current += nbytes
            self.peak = max(self.peak, self.current)

    def remove_file(self, path: Path) -> None:
        """Delete ``path`` (if present) and take its size off the meter."""
        with contextlib.suppress(FileNotFoundError):
            size = path.stat().st_size
            path.unlink()
            self.add(-size)


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc.lower()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def _sha256_of(path: Path, limit: int) -> hashlib._Hash:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        remaining = limit
        while remaining > 0:
            block = f.read(min(_CHUNK, remaining))
            if not block:
                break
            digest.update(block)
            remaining -= len(block)
    return digest


class Downloader:
    """Fetch :class:`RemoteFile` objects to disk with retries and resumption.

    ``retries``: extra attempts after a transient failure (network error, 5xx, 429, a short
    body); waits ``backoff * 2**attempt`` seconds between attempts (at most 60).
    """

    def __init__(
        self,
        retries: int = 5,
        backoff: float = 2.0,
        timeout: float = 60.0,
        progress: bool = True,
        meter: ScratchMeter | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.progress = progress
        self.meter = meter or ScratchMeter()
        self._sleep = sleep
        self.bytes_downloaded = 0
        self.requests = 0
        self._count_lock = threading.Lock()  # fetch may run in several threads at once

    def fetch(self, remote: RemoteFile, dest: Path, cancel: threading.Event | None = None) -> Path:
        """Download ``remote`` to ``dest`` unless a whole copy is already there; return ``dest``."""
        dest = Path(dest)
        whole = _whole_record(dest)
        if dest.is_file() and self._is_whole(remote, dest, whole):
            self.meter.add(dest.stat().st_size)  # a whole copy from an earlier run
            if remote.size is None:
                self.meter.add(whole.stat().st_size)
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + INCOMPLETE_SUFFIX)
        if dest.is_file() and remote.size is None:
            # Unknown size and no record that it is whole: an older version may have kept a
            # body cut short under this name. Continue it as a partial download.
            if partial.exists():
                dest.unlink()
            else:
                os.replace(dest, partial)
        if partial.is_file():
            self.meter.add(partial.stat().st_size)  # resumed below
        etag: str | None = None
        announced: int | None = None
        last_error = ""
        for attempt in range(self.retries + 1):
            if cancel is not None and cancel.is_set():
                raise CancelledError(remote.name)
            try:
                etag, total = self._attempt(remote, partial, etag, cancel)
                announced = total if total is not None else announced
                self._verify(remote, partial, announced)
            except _RetryError as exc:
                last_error = str(exc)
                if attempt < self.retries:
                    self._sleep(min(60.0, self.backoff * 2**attempt))
                continue
            os.replace(partial, dest)
            if remote.size is None:
                self._record_whole(remote, dest, whole)
            return dest
        raise DownloadError(
            f"{remote.name}: download failed after {self.retries + 1} attempts ({last_error}); "
            "run the same command again to resume, or raise --retries"
        )

    @staticmethod
    def _is_whole(remote: RemoteFile, dest: Path, whole: Path) -> bool:
        size = dest.stat().st_size
        if remote.size is not None:
            return size == remote.size
        try:
            return json.loads(whole.read_text()).get("size") == size
        except (OSError, ValueError, AttributeError):
            return False

    def _record_whole(self, remote: RemoteFile, dest: Path, whole: Path) -> None:
        """Record that ``dest`` (fetched without a known size) is whole, for later runs."""
        atomic_write_json(whole, {"url": remote.url, "size": dest.stat().st_size})
        self.meter.add(whole.stat().st_size)

    def _verify(self, remote: RemoteFile, partial: Path, announced: int | None = None) -> None:
        size = partial.stat().st_size
        expected = remote.size if remote.size is not None else announced
        if expected is not None and size != expected:
            raise _RetryError(f"got {size} bytes, expected {expected}")
        if remote.sha256 is not None:
            digest = _sha256_of(partial, size).hexdigest()
            if digest != remote.sha256.lower():
                self.meter.remove_file(partial)
                raise _RetryError(f"sha256 mismatch ({digest[:12]}... != {remote.sha256[:12]}...)")

    def _open(self, url: str, headers: dict[str, str]) -> http.client.HTTPResponse:
        """GET ``url`` following redirects by hand; ``Authorization`` stays on its origin."""
        origin = _origin(url)
        for _ in range(_MAX_REDIRECTS):
            sent = dict(headers)
            if _origin(url) != origin:
                sent = {k: v for k, v in sent.items() if k.lower() != "authorization"}
            request = urllib.request.Request(url, headers=sent, method="GET")
            with self._count_lock:
                self.requests += 1
            try:
                return _OPENER.open(request, timeout=self.timeout)  # type: ignore[return-value]
            except urllib.error.HTTPError as exc:
                if exc.code in (301, 302, 303, 307, 308) and exc.headers.get("Location"):
                    url = urljoin(url, exc.headers["Location"])
                    exc.close()
                    continue
                raise
        raise _RetryError(f"more than {_MAX_REDIRECTS} redirects")

    def _attempt(
        self,
        remote: RemoteFile,
        partial: Path,
        etag: str | None,
        cancel: threading.Event | None,
    ) -> tuple[str | None, int | None]:
        """One request: append to ``partial`` from its current size.

        Returns the ETag seen and the file's whole size as the server announced it (None when
        it did not). Raises :class:`_RetryError` when the body ends before its
        ``Content-Length``: what arrived stays in ``partial`` for the next attempt.
        """
        offset = partial.stat().st_size if partial.exists() else 0
        if remote.size is not None and offset > remote.size:
            self.meter.remove_file(partial)
            offset = 0
        if remote.size is not None and offset == remote.size and offset > 0:
            return etag, remote.size
        headers = {"Accept-Encoding": "identity", **remote.headers}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if etag:
                headers["If-Range"] = etag
        try:
            response = self._open(remote.url, headers)
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 416 and offset:
                total = _content_range_total(exc.headers.get("Content-Range"))
                if total == offset:  # nothing left to send: the partial file is the whole file
                    return etag, total
                self.meter.remove_file(partial)  # our partial file is useless: start over
                raise _RetryError("range not satisfiable; restarting") from exc
            if exc.code in _RETRY_STATUS:
                raise _RetryError(f"HTTP {exc.code}") from exc
            raise DownloadError(
                f"{remote.name}: HTTP {exc.code} {exc.reason} for {remote.url}"
            ) from exc
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise _RetryError(f"{type(exc).__name__}: {exc}") from exc
        with response:
            etag = response.headers.get("ETag") or etag
            length = _content_length(response.headers.get("Content-Length"))
            if offset and response.status != 206:
                self.meter.remove_file(partial)  # the server sent the whole file
                offset = 0
            elif offset:
                start = _content_range_start(response.headers.get("Content-Range"))
                if start != offset:
                    self.meter.remove_file(partial)
                    raise _RetryError(f"server resumed at byte {start}, not {offset}")
            if response.status == 206:
                total = _content_range_total(response.headers.get("Content-Range"))
            else:
                total = length
            received = self._stream(remote, response, partial, offset, cancel)
        if length is not None and received < length:
            raise _RetryError(f"connection closed after {received} of {length} bytes")
        return etag, total

    def _stream(
        self,
        remote: RemoteFile,
        response: http.client.HTTPResponse,
        partial: Path,
        offset: int,
        cancel: threading.Event | None,
    ) -> int:
        """Append the body to ``partial``; return the number of bytes received."""
        received = 0
        bar = tqdm(
            total=remote.size,
            initial=offset,
            desc=f"  {remote.name}",
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            leave=False,
            disable=not self.progress,
        )
        try:
            with open(partial, "ab" if offset else "wb") as out:
                while True:
                    if cancel is not None and cancel.is_set():
                        raise CancelledError(remote.name)
                    try:
                        block = response.read1(_CHUNK)  # what has arrived, up to a chunk
                    except (OSError, http.client.HTTPException) as exc:
                        raise _RetryError(f"connection lost ({type(exc).__name__})") from exc
                    if not block:
                        break
                    out.write(block)
                    out.flush()  # on disk, for the next run to resume from if this one dies
                    received += len(block)
                    self.meter.add(len(block))
                    with self._count_lock:
                        self.bytes_downloaded += len(block)
                    bar.update(len(block))
        finally:
            bar.close()
        return received


def _whole_record(dest: Path) -> Path:
    return dest.with_name(dest.name + WHOLE_SUFFIX)


def _content_length(value: str | None) -> int | None:
    """``Content-Length`` as a number (None when absent or not a number)."""
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _content_range_total(value: str | None) -> int | None:
    """The whole size ``n`` of ``Content-Range: bytes a-b/n`` or ``bytes */n``."""
    if not value or "/" not in value:
        return None
    try:
        return int(value.rsplit("/", 1)[1])
    except ValueError:
        return None


def _content_range_start(value: str | None) -> int | None:
    """The first byte of ``Content-Range: bytes a-b/n``."""
    if not value or not value.startswith("bytes "):
        return None
    try:
        return int(value[6:].split("-", 1)[0])
    except ValueError:
        return None
