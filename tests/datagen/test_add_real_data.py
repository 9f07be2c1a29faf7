"""The real sets and the Kaggle subset, against local stand-ins (a fake Kaggle client, a local
HTTP server for the AFHQ zip, img2dataset itself against a local server and TSV)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datagen import add_real_data, make_sentry_subset
from datagen.catalog import REAL_SOURCES
from datagen.convert import convert_bytes
from datagen.manifest import FAKE, REAL, read_manifest
from datagen.preprocess import Preprocessing
from datagen.real_sets import cc3m
from datagen.real_sets.kaggle import KaggleApiClient, has_credentials
from rfd_common.errors import UserError
from tests.datagen.fake_hub import FakeHub, ServedHub, noise_png, tar_gz

REPO_ROOT = Path(__file__).resolve().parents[2]
# The catalog's Kaggle slugs (whichever Kaggle dataset the catalog names for each).
FFHQ = next(s.origin for s in REAL_SOURCES if s.name == "ffhq")
CELEBA = next(s.origin for s in REAL_SOURCES if s.name == "celeba-hq")


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def jpeg(seed: int, size: tuple[int, int]) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


class FakeKaggle:
    """Stands in for the Kaggle API behind the downloader interface."""

    def __init__(self, datasets: dict[str, bytes]) -> None:
        self.datasets = datasets
        self.calls: list[str] = []

    def download(self, dataset: str, folder: Path) -> Path:
        self.calls.append(dataset)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{dataset.split('/')[-1]}.zip"
        path.write_bytes(self.datasets[dataset])
        return path


@pytest.fixture
def web(tmp_path: Path) -> Iterator[ServedHub]:
    """A local HTTP server (the Hub stand-in's resolve URLs serve any file)."""
    hub = FakeHub()
    hub.add(
        "afhq_v2.zip",
        zip_bytes(
            {f"train/cat/flickr_cat_{i}.png": noise_png(i, (64, 64)) for i in range(3)}
            | {"test/dog/pixabay_dog_0.png": noise_png(9, (64, 64))}
        ),
    )
    with hub.serve() as served:
        yield served


def url(served: ServedHub, path: str) -> str:
    return f"{served.endpoint}/datasets/{served.hub.repo_id}/resolve/main/{path}"


def cli_args(root: Path, *extra: str) -> list[str]:
    return ["--local_dataset_path", str(root), "--workers", "2", "--quiet", *extra]


def run(root: Path, kaggle: FakeKaggle | None, *extra: str) -> None:
    args = add_real_data.build_parser().parse_args(cli_args(root, *extra))
    assert add_real_data.run(args, kaggle=kaggle) == 0


def kaggle_sets() -> FakeKaggle:
    return FakeKaggle(
        {
            FFHQ: zip_bytes({f"resized/{i:05d}.jpg": jpeg(i, (256, 256)) for i in range(4)}),
            CELEBA: zip_bytes(
                {f"celeba_hq_256/{i:05d}.jpg": jpeg(10 + i, (256, 256)) for i in range(3)}
                | {"celeba_hq_256/readme.txt": b"x"}
            ),
        }
    )


def test_kaggle_and_zip_sets_become_manifest_rows(web: ServedHub, tmp_path: Path) -> None:
    root = tmp_path / "ds"
    kaggle = kaggle_sets()
    afhq = ("--afhq_url", url(web, "afhq_v2.zip"))
    run(root, kaggle, "--sources", "ffhq", "celeba-hq", "afhq-v2", *afhq)
    rows = read_manifest(root)
    assert sorted(r.path for r in rows) == sorted(
        [f"ImageData/train/ffhq/{i:05d}.jpg" for i in range(4)]
        + [f"ImageData/val/celeba-hq/{i:05d}.jpg" for i in range(3)]
        + [f"ImageData/train/afhq-v2/train/cat/flickr_cat_{i}.jpg" for i in range(3)]
        + ["ImageData/train/afhq-v2/test/dog/pixabay_dog_0.jpg"]
    )
    assert all(r.label == REAL and r.family == "real" for r in rows)
    assert {r.source for r in rows} == {"ffhq", "celeba-hq", "afhq-v2"}
    for row in rows:
        with Image.open(root / row.path) as image:
            assert (image.format, image.size) == ("JPEG", (256, 256))
    assert kaggle.calls == [FFHQ, CELEBA]
    assert not any(p.is_file() for p in (root / ".datagen" / "scratch").rglob("*"))
    # Run again: everything is finished, nothing is downloaded.
    web.hub.requests.clear()
    run(root, kaggle, "--sources", "ffhq", "celeba-hq", "afhq-v2", *afhq)
    assert kaggle.calls == [FFHQ, CELEBA] and web.hub.downloads() == []
    assert len(read_manifest(root)) == len(rows)


def test_max_images_keeps_the_first_images_in_name_order(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    run(root, kaggle_sets(), "--sources", "ffhq", "--max_images_per_source", "2")
    assert [r.path for r in read_manifest(root)] == [
        "ImageData/train/ffhq/00000.jpg",
        "ImageData/train/ffhq/00001.jpg",
    ]


def test_reals_and_fakes_share_one_preprocessing(web: ServedHub, tmp_path: Path) -> None:
    """A real from a zip and a fake from the Hub stand-in, same source size, same settings."""
    root = tmp_path / "ds"
    run(root, None, "--sources", "afhq-v2", "--afhq_url", url(web, "afhq_v2.zip"))
    hub = FakeHub()
    hub.add(
        "ImageData/val/Midjourneyv5-5K/Midjourneyv5-5K.tar.gz",
        tar_gz([("Midjourneyv5-5K/0.png", noise_png(0, (64, 64)))]),
    )
    with hub.serve() as served:
        parsed = make_sentry_subset.build_parser().parse_args(
            cli_args(root, "--endpoint", served.endpoint, "--sources", "Midjourneyv5-5K")
        )
        make_sentry_subset.build(parsed)
    rows = {r.label: r for r in read_manifest(root)}
    settings = []
    for label in (REAL, FAKE):
        with Image.open(root / rows[label].path) as image:
            settings.append((image.size, image.quantization, image.info.get("progressive")))
    assert settings[0] == settings[1]
    # Same source pixels, same bytes: the real went through exactly the fakes' conversion.
    fake_out = (root / rows[FAKE].path).read_bytes()
    assert fake_out == convert_bytes(noise_png(0, (64, 64)), Preprocessing())
    info = json.loads((root / "dataset.json").read_text())
    assert set(info["sources"]) == {"afhq-v2", "Midjourneyv5-5K"}


def test_kaggle_subset_is_imported_with_catalog_labels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    top = "sentry-subset/ImageData"
    subset = zip_bytes(
        {
            f"{top}/train/cc3m/000001.jpg": jpeg(1, (300, 200)),
            f"{top}/train/IFv1-CC1M/IFv1-dpmsolver++-50-1M/a.png": noise_png(2),
            f"{top}/val/stylegan3-60K/stylegan3-t-ffhqu-1024x1024/b.jpg": jpeg(3, (64, 64)),
            f"{top}/val/celeba-hq/c.jpg": jpeg(4, (64, 64)),
            f"{top}/train/mystery/d.jpg": jpeg(5, (64, 64)),
            "sentry-subset/MetaData/train/cc3m.csv": b"ImageData/train/cc3m/000001.jpg 1\n",
        }
    )
    root = tmp_path / "ds"
    kaggle = FakeKaggle({"carrotpeeler/sentry-subset": subset})
    run(root, kaggle, "--sources", "kaggle-subset")
    rows = {r.path: r for r in read_manifest(root)}
    assert set(rows) == {
        "ImageData/train/cc3m/000001.jpg",
        "ImageData/train/IFv1-CC1M/IFv1-dpmsolver++-50-1M/a.jpg",
        "ImageData/val/stylegan3-60K/stylegan3-t-ffhqu-1024x1024/b.jpg",
        "ImageData/val/celeba-hq/c.jpg",
    }
    assert rows["ImageData/train/cc3m/000001.jpg"].label == REAL
    fake = rows["ImageData/train/IFv1-CC1M/IFv1-dpmsolver++-50-1M/a.jpg"]
    assert (fake.label, fake.source, fake.family) == (FAKE, "IFv1-dpmsolver++-50-1M", "diffusion")
    assert rows["ImageData/val/stylegan3-60K/stylegan3-t-ffhqu-1024x1024/b.jpg"].family == "gan"
    with Image.open(root / "ImageData/train/cc3m/000001.jpg") as image:
        assert image.size == (256, 256)  # converted like every other image
    assert kaggle.calls == ["carrotpeeler/sentry-subset"]
    out = capsys.readouterr().out
    assert (
        "not in a catalog leaf folder: 1 (e.g. sentry-subset/ImageData/train/mystery/d.jpg)" in out
    )


def test_the_kaggle_subset_is_imported_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = add_real_data.main(cli_args(tmp_path / "ds", "--sources", "kaggle-subset", "ffhq"))
    assert code == 2 and "import it alone" in capsys.readouterr().err
    assert not (tmp_path / "ds").exists()


def test_missing_kaggle_credentials_say_how_to_set_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    assert not has_credentials()
    with pytest.raises(UserError, match="KAGGLE_USERNAME") as excinfo:
        KaggleApiClient().download(FFHQ, tmp_path / "dl")
    assert "KAGGLE_KEY" in str(excinfo.value)
    code = add_real_data.main(cli_args(tmp_path / "ds", "--sources", "ffhq"))
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: cannot start: 1 problem")
    assert "\n  ffhq: Kaggle credentials not found" in err
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", "0123")
    assert has_credentials()
    (tmp_path / ".kaggle").mkdir()
    (tmp_path / ".kaggle" / "kaggle.json").write_text("{}")
    monkeypatch.delenv("KAGGLE_KEY")
    assert has_credentials()


def test_dry_run_lists_sources_and_downloads_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kaggle = kaggle_sets()
    run(tmp_path / "ds", kaggle, "--dry_run", "--max_images_per_source", "7")
    out = capsys.readouterr().out
    for name in ("cc3m-train", "cc3m-val", "ffhq", "afhq-v2", "celeba-hq"):
        assert name in out
    assert "GCC-training.tsv" in out and FFHQ in out
    assert kaggle.calls == [] and not (tmp_path / "ds").exists()


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
    run(root, None, *extra, "--max_images_per_source", "7")
    rows = [r.path for r in read_manifest(root)]
    wanted = [i for i in range(20) if i % 4 != 3][:7]
    assert rows == [f"ImageData/val/cc3m/0000/{i:07d}.jpg" for i in wanted]
    assert calls == [0, 4, 8]  # three chunks of 4 URLs give the 7 images; no fourth chunk
    # A larger target: chunks taken whole are not fetched again; the one cut short is.
    calls.clear()
    run(root, None, *extra, "--max_images_per_source", "10")
    assert calls == [8, 12]
    assert len(read_manifest(root)) == 10


def test_cc3m_through_img2dataset_keeps_originals(tmp_path: Path) -> None:
    pytest.importorskip("img2dataset")
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
        run(root, None, *extra, "--cc3m_threads", "4", "--cc3m_timeout", "5")
        rows = read_manifest(root)
        lines_ok = [0, 1, 3, 4]  # TSV lines of the four images (line 2 is the dead link)
        assert [r.path for r in rows] == [f"ImageData/val/cc3m/0000/{n:07d}.jpg" for n in lines_ok]
        prep = Preprocessing()
        for row, (i, original) in zip(rows, images.items(), strict=True):
            # img2dataset handed over the original bytes: our conversion of the original
            # gives exactly the stored JPEG (no border padding, no resize on its side).
            assert (root / row.path).read_bytes() == convert_bytes(original, prep), i
        hub.requests.clear()
        run(root, None, *extra)
        assert hub.downloads() == []  # finished: no TSV, no image fetched again


@pytest.mark.parametrize("how", ["script", "module"])
def test_help_works_as_a_script_and_as_a_module(how: str) -> None:
    command = ["datagen/add_real_data.py"] if how == "script" else ["-m", "datagen.add_real_data"]
    result = subprocess.run(
        [sys.executable, *command, "--help"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    for flag in ("--sources", "--cc3m_train_tsv", "--afhq_url", "--max_images_per_source"):
        assert flag in result.stdout
    assert "KAGGLE_USERNAME" in result.stdout


def test_help_is_fast_and_imports_no_heavy_library() -> None:
    code = (
        "import sys; from datagen import add_real_data, make_sentry_subset; "
        "print(sorted(m for m in ('kaggle', 'img2dataset', 'huggingface_hub', 'torch') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
