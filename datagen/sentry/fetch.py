"""Fetch an archive's parts one by one, at most ``prefetch`` ahead of the reader.

The reader consumes part i while parts i+1 .. i+prefetch download in a background thread;
a consumed part is deleted at once (unless archives are kept), so at most ``prefetch + 1``
parts lie on disk: one part at a time with ``prefetch`` 0.

When the reader stops early (every leaf full), downloads still in flight are cancelled and
waited for, then every part this run fetched ahead but never handed to the reader is deleted,
whole or not. What stays on disk therefore never depends on how far a background download had
got: with ``keep``, exactly the parts read plus those already whole on disk before the run.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from datagen.download import INCOMPLETE_SUFFIX, ScratchMeter
from datagen.sentry.parts import RemotePart

FetchFn = Callable[[RemotePart, threading.Event], Path]


class PartPipeline:
    """Yield local paths of ``parts`` in order; see the module docstring."""

    def __init__(
        self,
        parts: tuple[RemotePart, ...] | list[RemotePart],
        fetch: FetchFn,
        destination: Callable[[RemotePart], Path],
        meter: ScratchMeter,
        prefetch: int = 1,
        keep: bool = False,
    ) -> None:
        self.parts = list(parts)
        self.fetch = fetch
        self.destination = destination
        self.meter = meter
        self.prefetch = max(0, prefetch)
        self.keep = keep
        self.cancel = threading.Event()
        self.consumed: list[RemotePart] = []
        self.fetched: list[RemotePart] = []
        self._by_path = {destination(p): p for p in self.parts}
        self._already_whole = {
            path for path, part in self._by_path.items() if _is_whole(path, part.size)
        }
        self._handed: set[Path] = set()
        self._executor: ThreadPoolExecutor | None = None

    def paths(self) -> Iterator[Path]:
        """Local part files in order; the next is requested only after the last was consumed."""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fetch")
        pending: deque[Future[Path]] = deque()
        upcoming = iter(self.parts)

        def submit_next() -> None:
            part = next(upcoming, None)
            if part is not None:
                pending.append(self._executor.submit(self.fetch, part, self.cancel))  # type: ignore[union-attr]

        for _ in range(1 + self.prefetch):
            submit_next()
        while pending:
            path = pending.popleft().result()
            self.fetched.append(self._by_path[path])
            self._handed.add(Path(path))
            yield path
            submit_next()

    def on_consumed(self, path: Path) -> None:
        """The reader is done with ``path``: delete it unless archives are kept."""
        part = self._by_path.get(Path(path))
        if part is not None:
            self.consumed.append(part)
        if not self.keep:
            self.meter.remove_file(Path(path))

    def close(self, success: bool) -> None:
        """Stop fetching and wait for the background download to end.

        After success (or an early stop) leftover downloads are deleted, ``.incomplete`` files
        included. With ``keep``, the parts the reader got stay, and so do parts that were whole
        on disk before this run; a part fetched ahead but never read is deleted. After a
        failure downloads stay, for the next run to resume.
        """
        self.cancel.set()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        if not success:
            return
        for path in self._by_path:
            kept = path in self._handed or path in self._already_whole
            if not (self.keep and kept):
                self.meter.remove_file(path)
            self.meter.remove_file(path.with_name(path.name + INCOMPLETE_SUFFIX))


def _is_whole(path: Path, size: int | None) -> bool:
    """A complete copy of a part is already on disk."""
    return path.is_file() and (size is None or path.stat().st_size == size)
