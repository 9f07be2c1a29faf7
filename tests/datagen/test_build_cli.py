"""datagen/build_cli.py: the options both builders share; --jpeg_subsampling reaches the encoder
and dataset.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image, JpegImagePlugin

from datagen import add_real_data, make_sentry_subset
from datagen.manifest import read_manifest
from tests.datagen.fake_hub import noise_png
from tests.datagen.fake_kaggle import zip_bytes


@pytest.mark.parametrize(("flag", "sampling"), [(None, 2), ("4:2:0", 2), ("4:4:4", 0)])
def test_jpeg_subsampling_reaches_the_files_and_dataset_json(
    tmp_path: Path, flag: str | None, sampling: int
) -> None:
    path = tmp_path / "afhq.zip"
    path.write_bytes(zip_bytes({f"train/dog/{i}.png": noise_png(i, (300, 280)) for i in range(3)}))
    root = tmp_path / "ds"
    argv = ["--local_dataset_path", str(root), "--workers", "1", "--quiet"]
    argv += ["--sources", "afhq-v2", "--afhq_url", str(path)]
    if flag is not None:
        argv += ["--jpeg_subsampling", flag]
    assert add_real_data.main(argv) == 0
    rows = read_manifest(root)
    assert len(rows) == 3
    for row in rows:
        with Image.open(root / row.path) as image:
            assert JpegImagePlugin.get_sampling(image) == sampling  # read from the file itself
    info = json.loads((root / "dataset.json").read_text())
    assert info["preprocessing"]["subsampling"] == (flag or "4:2:0")


def test_both_builders_take_the_subsampling_flag() -> None:
    for module in (add_real_data, make_sentry_subset):
        args = module.build_parser().parse_args(["--jpeg_subsampling", "4:4:4"])
        assert args.jpeg_subsampling == "4:4:4"
        with pytest.raises(SystemExit):
            module.build_parser().parse_args(["--jpeg_subsampling", "4:1:1"])
