"""datagen/add_real_data.py: the chosen real sets become manifest rows (a fake Kaggle client, a
local HTTP server for the AFHQ zip), reals and fakes share one preprocessing, a dry run and a
finished rerun download nothing, the Kaggle subset is imported alone, --help stays light."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from datagen import add_real_data, make_sentry_subset
from datagen.convert import convert_bytes
from datagen.manifest import FAKE, REAL, read_manifest
from datagen.preprocess import Preprocessing
from tests.datagen.fake_hub import FakeHub, ServedHub, noise_png, tar_gz
from tests.datagen.fake_kaggle import CELEBA, FFHQ, FakeKaggle, jpeg, zip_bytes

REPO_ROOT = Path(__file__).resolve().parents[2]


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


def test_the_kaggle_subset_is_imported_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = add_real_data.main(cli_args(tmp_path / "ds", "--sources", "kaggle-subset", "ffhq"))
    assert code == 2 and "import it alone" in capsys.readouterr().err
    assert not (tmp_path / "ds").exists()


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
