"""datagen.real_sets.hf: the ``hf`` kind against a local stand-in of the Hub, a dataset
repository of PNG files, of parquet shards (the ``datasets`` library's ``{bytes, path}`` image
cells) or of a zip. The JPEGs must come from the lossless pixels, encoded once."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datagen import add_real_data
from datagen.catalog import RealSource
from datagen.manifest import REAL, read_manifest
from rfd_common.errors import UserError
from tests.datagen.fake_hub import FakeHub
from tests.datagen.real_sets.ffhq_pngs import PIXELS, RESAMPLE, expected_jpeg, png

REPO = "denislukovnikov/ffhq256-images-only"
SOURCE = RealSource("ffhq", "train", "ffhq", "hf", REPO, 70_000)


def parquet(rows: list[dict[str, object]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = pa.table({"image": pa.array(rows, type=image)})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=3)
    return buffer.getvalue()


def repository(layout: str) -> FakeHub:
    hub = FakeHub(repo_id=REPO)
    hub.add("README.md", b"# FFHQ 256\n")
    hub.add(".gitattributes", b"*.png filter=lfs\n")
    if layout == "files":
        for name, pixels in PIXELS.items():
            hub.add(f"images/{name}.png", png(pixels))
    elif layout == "parquet":
        cells = [{"bytes": png(p), "path": f"{n}.png"} for n, p in PIXELS.items()]
        hub.add("data/train-00000-of-00002.parquet", parquet(cells[:3]))
        hub.add("data/train-00001-of-00002.parquet", parquet(cells[3:]))
    else:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for name, pixels in PIXELS.items():
                archive.writestr(f"ffhq256/{name}.png", png(pixels))
        hub.add("ffhq256-images-only.zip", buffer.getvalue())
    return hub


def build(root: Path, endpoint: str, *extra: str) -> None:
    argv = ["--local_dataset_path", str(root), "--workers", "1", "--quiet", "--sources", "ffhq"]
    argv += [*RESAMPLE, "--endpoint", endpoint, *extra]
    args = add_real_data.build_parser().parse_args(argv)
    assert add_real_data.run(args, catalog=(SOURCE,)) == 0


@pytest.mark.parametrize("layout", ["files", "parquet", "zip"])
def test_pngs_from_a_hub_dataset_are_encoded_once(layout: str, tmp_path: Path) -> None:
    hub = repository(layout)
    root = tmp_path / "ds"
    with hub.serve() as served:
        build(root, served.endpoint)
        rows = read_manifest(root)
        assert [r.path for r in rows] == [f"ImageData/train/ffhq/{n}.jpg" for n in PIXELS]
        assert all((r.label, r.source, r.family) == (REAL, "ffhq", "real") for r in rows)
        for row, pixels in zip(rows, PIXELS.values(), strict=True):
            stored = (root / row.path).read_bytes()
            assert stored == expected_jpeg(pixels), row.path
            # ... which a copy already compressed once (the Kaggle JPEG set) cannot give.
            once = io.BytesIO()
            Image.fromarray(pixels).save(once, format="JPEG", quality=90)
            twice = expected_jpeg(np.asarray(Image.open(io.BytesIO(once.getvalue()))))
            assert stored != twice
        assert not any(p.is_file() for p in (root / ".datagen" / "scratch").rglob("*"))
        # Finished: a rerun downloads nothing.
        hub.requests.clear()
        build(root, served.endpoint)
        assert hub.downloads() == []
        assert len(read_manifest(root)) == len(PIXELS)


def test_a_cap_fetches_only_the_files_it_keeps(tmp_path: Path) -> None:
    hub = repository("files")
    with hub.serve() as served:
        build(tmp_path / "ds", served.endpoint, "--max_images_per_source", "2")
    assert [r.path for r in read_manifest(tmp_path / "ds")] == [
        "ImageData/train/ffhq/00000.jpg",
        "ImageData/train/ffhq/00001.jpg",
    ]
    assert sorted(r.path.rsplit("/", 1)[-1] for r in hub.downloads()) == ["00000.png", "00001.png"]


def test_a_repository_without_images_is_a_clear_error(tmp_path: Path) -> None:
    hub = FakeHub(repo_id=REPO, files={"README.md": b"nothing here"})
    with hub.serve() as served:
        argv = ["--local_dataset_path", str(tmp_path / "ds"), "--quiet", "--sources", "ffhq"]
        args = add_real_data.build_parser().parse_args([*argv, "--endpoint", served.endpoint])
        with pytest.raises(UserError, match="no image files, zips or parquet shards"):
            add_real_data.run(args, catalog=(SOURCE,))
