"""The one conversion every image goes through, and a process pool that runs it.

``convert_bytes`` decodes any image Pillow reads (PNG, JPEG, WebP...), applies its EXIF
orientation, and hands it to :class:`~datagen.preprocess.Preprocessing` (resize to a
square, JPEG encode). Real and fake images, from every source, take this path, so they differ
only in content. ``ConversionPool`` runs it over the available cores; each output is written
to a temporary name and renamed, so a killed run never leaves a truncated JPEG.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from datagen.preprocess import Preprocessing
from datagen.resampling import use_one_thread
from rfd_common.errors import UserError
from rfd_common.files import atomic_write_bytes

# A generated image is at most a few megapixels; refuse decompression bombs outright.
MAX_PIXELS = 64_000_000


class UnreadableImageError(ValueError):
    """Bytes that do not decode to an image."""


def convert_bytes(data: bytes, prep: Preprocessing) -> bytes:
    """JPEG bytes of the image encoded in ``data``, by the one preprocessing ``prep``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.width * image.height > MAX_PIXELS:
                    raise UnreadableImageError(f"{image.width}x{image.height} is too large")
                image.load()
                ImageOps.exif_transpose(image, in_place=True)  # no copy when already upright
                return prep.convert(image)
    except UnreadableImageError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Warning) as exc:
        raise UnreadableImageError(f"{type(exc).__name__}: {exc}") from exc


@dataclass(frozen=True)
class Task:
    """Convert ``data`` and write it to ``target``; ``key`` travels back with the result."""

    data: bytes
    target: str
    key: object = None


@dataclass(frozen=True)
class Result:
    key: object
    target: str
    ok: bool
    size: int = 0
    error: str = ""


def run_task(task: Task, prep: Preprocessing) -> Result:
    """Convert one image and write it atomically (the worker's job)."""
    try:
        jpeg = convert_bytes(task.data, prep)
    except UnreadableImageError as exc:
        return Result(task.key, task.target, False, error=str(exc))
    target = Path(task.target)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(target, jpeg)
    return Result(task.key, task.target, True, size=len(jpeg))


_WORKER_PREP: Preprocessing | None = None


def _watch_parent(parent: int) -> None:
    """End this worker when the process that started it is gone (killed with SIGKILL)."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(1)


def _init_worker(prep: Preprocessing, parent: int) -> None:
    global _WORKER_PREP
    _WORKER_PREP = prep
    use_one_thread()  # one core per conversion process
    # Ctrl-C is the main process's to handle: it stops submitting and shuts the pool down.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _worker_task(task: Task) -> Result:
    assert _WORKER_PREP is not None
    return run_task(task, _WORKER_PREP)


def default_workers() -> int:
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class ConversionPool:
    """Run :func:`run_task` in ``workers`` processes (in this process when ``workers`` is 1).

    ``submit`` blocks while ``max_in_flight`` tasks are pending, so memory stays bounded;
    finished results are handed to ``on_result`` from the calling thread.
    """

    def __init__(
        self,
        prep: Preprocessing,
        workers: int | None = None,
        on_result: Callable[[Result], None] | None = None,
        max_in_flight: int | None = None,
    ) -> None:
        self.prep = prep
        self.workers = max(1, workers or default_workers())
        self.on_result = on_result or (lambda result: None)
        self.max_in_flight = max_in_flight or 4 * self.workers
        self._pending: set[Future[Result]] = set()
        self._executor: ProcessPoolExecutor | None = None
        if self.workers > 1:
            self._executor = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(prep, os.getpid()),
            )

    def submit(self, task: Task) -> None:
        if self._executor is None:
            self.on_result(run_task(task, self.prep))
            return
        while len(self._pending) >= self.max_in_flight:
            self._collect(wait(self._pending, return_when=FIRST_COMPLETED).done)
        self._pending.add(self._executor.submit(_worker_task, task))

    def _collect(self, done: set[Future[Result]]) -> None:
        for future in done:
            self._pending.discard(future)
            try:
                result = future.result()
            except BrokenProcessPool as exc:
                raise UserError(
                    "a conversion process died (out of memory?); run the same command again, "
                    "with fewer --workers if it happens again"
                ) from exc
            self.on_result(result)

    def drain(self) -> None:
        """Wait for every submitted task and hand over its result."""
        while self._pending:
            self._collect(wait(self._pending, return_when=FIRST_COMPLETED).done)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> ConversionPool:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.drain()
        self.close()
