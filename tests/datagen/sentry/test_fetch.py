"""datagen.sentry.fetch: the part pipeline deletes each part once read, bounds the scratch disk, and
leaves only the parts read when the reader stops early."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from datagen.download import INCOMPLETE_SUFFIX, CancelledError, ScratchMeter
from datagen.sentry.fetch import PartPipeline
from datagen.sentry.parts import RemotePart
from datagen.sentry.stream import ChainedParts, GunzipReader, StreamStats, iter_members
from tests.datagen.fake_hub import noise_png, split_bytes, tar_gz

MEMBERS = [(f"leaf/{i:03d}.png", noise_png(i, (24 + i, 20))) for i in range(10)]


def test_pipeline_deletes_each_part_when_read_and_bounds_scratch(tmp_path: Path) -> None:
    archive = tar_gz(MEMBERS)
    pieces = split_bytes(archive, 6)
    parts = [RemotePart(f"X.tar.gz.{i}", len(p), index=i) for i, p in enumerate(pieces)]
    meter = ScratchMeter()
    on_disk: list[int] = []

    def fetch(part: RemotePart, cancel: threading.Event) -> Path:
        path = tmp_path / part.path
        path.write_bytes(pieces[part.index])  # type: ignore[index]
        meter.add(part.size)
        on_disk.append(len(list(tmp_path.iterdir())))
        return path

    for prefetch in (0, 2):
        on_disk.clear()
        pipeline = PartPipeline(parts, fetch, lambda p: tmp_path / p.path, meter, prefetch)
        chained = ChainedParts(pipeline.paths(), on_done=pipeline.on_consumed)
        stats = StreamStats()
        members = list(iter_members(GunzipReader(chained), stats))
        pipeline.close(success=True)
        assert [m.name for m in members] == [n for n, _ in MEMBERS]
        assert max(on_disk) <= prefetch + 1
        assert list(tmp_path.iterdir()) == []
        assert meter.peak <= sum(sorted(p.size for p in parts)[-(prefetch + 1) :])
        assert meter.current == 0


@pytest.mark.parametrize("prefetched_part_finishes", [False, True])
def test_an_early_stop_leaves_only_the_parts_read_whatever_the_prefetch_reached(
    tmp_path: Path, prefetched_part_finishes: bool
) -> None:
    """With kept archives, a stream stopped early keeps the parts it read and parts whole
    before the run; the part fetched ahead is deleted whether its download had finished or was
    still running (no thread timing involved: the test orders the events itself)."""
    pieces = [bytes([i]) * (100 + i) for i in range(4)]
    parts = [RemotePart(f"X.tar.gz.{i}", len(p), index=i) for i, p in enumerate(pieces)]
    kept_before = tmp_path / parts[3].path
    kept_before.write_bytes(pieces[3])  # whole from an earlier --keep_archives run
    meter = ScratchMeter()
    prefetch_started, prefetch_done = threading.Event(), threading.Event()

    def fetch(part: RemotePart, cancel: threading.Event) -> Path:
        path = tmp_path / part.path
        if part.index == 1:  # the part fetched ahead while part 0 is read
            partial = path.with_name(path.name + INCOMPLETE_SUFFIX)
            partial.write_bytes(pieces[1][:10])
            prefetch_started.set()
            if not prefetched_part_finishes:
                cancel.wait()
                raise CancelledError(part.name)
            partial.write_bytes(pieces[1])
            partial.replace(path)
            prefetch_done.set()
            return path
        path.write_bytes(pieces[part.index])  # type: ignore[index]
        return path

    pipeline = PartPipeline(parts, fetch, lambda p: tmp_path / p.path, meter, 1, keep=True)
    stream = pipeline.paths()
    first = next(stream)  # part 0 handed to the reader; part 1 is being fetched ahead
    assert prefetch_started.wait(timeout=60)
    if prefetched_part_finishes:
        assert prefetch_done.wait(timeout=60)
    stream.close()  # the reader stops early: every leaf is full
    pipeline.close(success=True)
    assert first == tmp_path / parts[0].path
    assert sorted(p.name for p in tmp_path.iterdir()) == [parts[0].name, parts[3].name]
    assert [p.index for p in pipeline.fetched] == [0]
