"""datagen.real_sets.cc3m: URL chunks stop at the target and resume (a stand-in runner), and
img2dataset itself, against a local server and TSV, hands over the original bytes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from datagen import add_real_data
from datagen.catalog import REAL_SOURCES
from datagen.convert import convert_bytes
from datagen.manifest import read_manifest
from datagen.preprocess import Preprocessing
from datagen.real_sets import cc3m
from datagen.real_sets.cc3m import is_url
from tests.datagen.fake_hub import FakeHub, ServedHub
from tests.datagen.fake_kaggle import jpeg


def url(served: ServedHub, path: str) -> str:
    return f"{served.endpoint}/datasets/{served.hub.repo_id}/resolve/main/{path}"


def run(root: Path, *extra: str) -> None:
    argv = ["--local_dataset_path", str(root), "--workers", "2", "--quiet", *extra]
    assert add_real_data.run(add_real_data.build_parser().parse_args(argv)) == 0


def fake_img2dataset(pages: dict[str, bytes], calls: list[int]):  # type: ignore[no-untyped-def]
    """A stand-in runner writing img2dataset's file layout (for the chunking logic only)."""

    def runner(urls, folder, options, quiet=False):  # type: ignore[no-untyped-def]
        calls.append(urls[0][0])
        shard = folder / "images" / "00000"
        shard.mkdir(parents=True, exist_ok=True)
        for key, (line, address) in enumerate(urls):
            meta = {"url": address, "line": line, "key": f"{key:09d}"}
            name = address.rsplit("/", 1)[-1]
            if name in pages:
                (shard / f"{key:09d}.jpg").write_bytes(pages[name])
                meta["status"] = "success"
            else:
                meta["status"] = "failed_to_download"
            (shard / f"{key:09d}.json").write_text(json.dumps(meta))

    return runner


def test_cc3m_chunks_stop_at_the_target_and_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pages = {f"{i}.jpg": jpeg(i, (80, 60)) for i in range(20) if i % 4 != 3}
    tsv = tmp_path / "val.tsv"
    tsv.write_text("".join(f"caption {i}\thttp://127.0.0.1:9/{i}.jpg\n" for i in range(20)))
    calls: list[int] = []
    monkeypatch.setattr(cc3m, "run_img2dataset", fake_img2dataset(pages, calls))
    root = tmp_path / "ds"
    extra = ("--sources", "cc3m-val", "--cc3m_val_tsv", str(tsv), "--cc3m_chunk_urls", "4")
    run(root, *extra, "--max_images_per_source", "7")
    rows = [r.path for r in read_manifest(root)]
    wanted = [i for i in range(20) if i % 4 != 3][:7]
    assert rows == [f"ImageData/val/cc3m/0000/{i:07d}.jpg" for i in wanted]
    assert calls == [0, 4, 8]  # three chunks of 4 URLs give the 7 images; no fourth chunk
    # A larger target: chunks taken whole are not fetched again; the one cut short is.
    calls.clear()
    run(root, *extra, "--max_images_per_source", "10")
    assert calls == [8, 12]
    assert len(read_manifest(root)) == 10


def test_cc3m_through_img2dataset_keeps_originals(tmp_path: Path) -> None:
    import img2dataset  # noqa: F401  (a test dependency)

    hub = FakeHub()
    images = {i: jpeg(i, (320 + 16 * i, 200)) for i in range(4)}
    for i, data in images.items():
        hub.add(f"img/{i}.jpg", data)
    with hub.serve() as served:
        lines = [f"caption {i}\t{url(served, f'img/{i}.jpg')}" for i in images]
        lines.insert(2, f"a dead link\t{url(served, 'img/missing.jpg')}")
        lines.append("a line without a url")
        hub.add("val.tsv", ("\n".join(lines) + "\n").encode())  # no header row
        root = tmp_path / "ds"
        extra = ("--sources", "cc3m-val", "--cc3m_val_tsv", url(served, "val.tsv"))
        run(root, *extra, "--cc3m_threads", "4", "--cc3m_timeout", "5")
        rows = read_manifest(root)
        lines_ok = [0, 1, 3, 4]  # TSV lines of the four images (line 2 is the dead link)
        assert [r.path for r in rows] == [f"ImageData/val/cc3m/0000/{n:07d}.jpg" for n in lines_ok]
        prep = Preprocessing()
        for row, (i, original) in zip(rows, images.items(), strict=True):
            # img2dataset handed over the original bytes: our conversion of the original
            # gives exactly the stored JPEG (no border padding, no resize on its side).
            assert (root / row.path).read_bytes() == convert_bytes(original, prep), i
        hub.requests.clear()
        run(root, *extra)
        assert hub.downloads() == []  # finished: no TSV, no image fetched again


def test_the_built_in_origins_of_local_kinds_are_urls() -> None:
    """The file check only looks at local paths: the catalog's own origins are URLs."""
    assert all(is_url(s.origin) for s in REAL_SOURCES if s.kind in ("cc3m", "url"))
