"""Settings fixed before the first image: a killed run rerun with other settings is refused,
and images whose settings were never recorded are made again, not reused."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from datagen import add_real_data
from datagen.dataset_root import DatasetRoot
from datagen.manifest import read_manifest
from datagen.preprocess import Preprocessing
from datagen.source_writer import SourceWriter
from rfd_common.errors import UserError
from tests.datagen.fake_kaggle import FFHQ, FakeKaggle, jpeg, zip_bytes

IMAGES = 6


def kaggle() -> FakeKaggle:
    files = {f"resized/{i:05d}.jpg": jpeg(i, (96, 80)) for i in range(IMAGES)}
    return FakeKaggle({FFHQ: zip_bytes(files)})


def argv(root: Path, *extra: str) -> list[str]:
    return [
        "--local_dataset_path",
        str(root),
        "--workers",
        "1",
        "--quiet",
        "--sources",
        "ffhq",
        *extra,
    ]


def build(root: Path, *extra: str) -> int:
    args = add_real_data.build_parser().parse_args(argv(root, *extra))
    return add_real_data.run(args, kaggle=kaggle())


def killed_build(root: Path, monkeypatch: pytest.MonkeyPatch, after: int, *extra: str) -> None:
    """A build interrupted (Ctrl-C) when ``after`` images have been handed over."""
    offer = SourceWriter.offer
    calls = [0]

    def interrupted(self: SourceWriter, leaf: str, relative: str, data: bytes | None) -> None:
        if calls[0] == after:
            raise KeyboardInterrupt
        calls[0] += 1
        offer(self, leaf, relative, data)

    with monkeypatch.context() as patch:
        patch.setattr(SourceWriter, "offer", interrupted)
        with pytest.raises(KeyboardInterrupt):
            build(root, *extra)


def outputs(root: Path) -> list[Path]:
    return sorted((root / "ImageData" / "train" / "ffhq").glob("*.jpg"))


def quantization(path: Path) -> dict[int, list[int]]:
    with Image.open(path) as image:
        return {k: list(v) for k, v in image.quantization.items()}


def reference_tables(quality: int) -> dict[int, list[int]]:
    data = Preprocessing(jpeg_quality=quality).encode(Image.new("RGB", (256, 256)))
    with Image.open(io.BytesIO(data)) as image:
        return {k: list(v) for k, v in image.quantization.items()}


def test_settings_are_recorded_before_the_first_image(tmp_path: Path) -> None:
    prep = Preprocessing(jpeg_quality=77, subsampling="4:4:4")
    with DatasetRoot(tmp_path / "ds", prep):
        recorded = json.loads((tmp_path / "ds" / "dataset.json").read_text())["preprocessing"]
        assert recorded == prep.to_dict()
        assert not (tmp_path / "ds" / "ImageData").exists()


def test_a_killed_run_rerun_with_other_settings_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "ds"
    killed_build(root, monkeypatch, after=3)
    made = outputs(root)
    assert len(made) == 3 and not (root / "manifest.csv").exists()  # no source finished
    before = {p: p.read_bytes() for p in made}
    with pytest.raises(UserError) as refused:
        build(root, "--jpeg_quality", "50")
    assert "jpeg_quality 90 -> 50" in str(refused.value)
    assert "same settings" in str(refused.value)
    assert {p: p.read_bytes() for p in outputs(root)} == before  # nothing touched
    # The same settings resume: the three images are reused, the rest converted.
    assert build(root) == 0
    rows = read_manifest(root)
    assert len(rows) == IMAGES
    assert all(quantization(root / r.path) == reference_tables(90) for r in rows)


def test_images_without_recorded_settings_are_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder an older version left (killed before its first source finished): images on
    disk, no record of their settings. They are converted again with this run's settings."""
    root = tmp_path / "ds"
    killed_build(root, monkeypatch, after=3)
    (root / "dataset.json").unlink()
    for state in (root / ".datagen" / "state").glob("*.json"):
        state.unlink()
    assert len(outputs(root)) == 3
    assert build(root, "--jpeg_quality", "50") == 0
    assert "3 files in ImageData/train/ffhq/ were written by a run" in capsys.readouterr().err
    rows = read_manifest(root)
    assert len(rows) == IMAGES
    assert all(quantization(root / r.path) == reference_tables(50) for r in rows)
    info = json.loads((root / "dataset.json").read_text())
    assert info["preprocessing"]["jpeg_quality"] == 50
    # Killed again and resumed: the images of the first resumed run are now trusted.
    assert build(root, "--jpeg_quality", "50") == 0
    assert len(read_manifest(root)) == IMAGES


def test_a_finished_source_keeps_its_images_when_its_target_changes(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    assert build(root, "--max_images_per_source", "2") == 0
    first = {p: p.stat().st_mtime_ns for p in outputs(root)}
    assert build(root) == 0  # a larger target: the source is built again, its images reused
    assert len(read_manifest(root)) == IMAGES
    assert {p: p.stat().st_mtime_ns for p in outputs(root) if p in first} == first


@pytest.mark.parametrize(("resample", "accepted"), [("lanczos", True), ("bicubic", False)])
def test_a_record_from_before_the_resizer_was_recorded(
    tmp_path: Path, resample: str, accepted: bool
) -> None:
    """Older ``dataset.json`` files name no resizer: Pillow did every resize then. Lanczos is
    still Pillow's; bicubic reductions are torch's now (one grey level apart), so a folder of
    Pillow-bicubic images does not take them."""
    root = tmp_path / "ds"
    root.mkdir()
    prep = Preprocessing(resample=resample)
    old = {k: v for k, v in prep.to_dict().items() if k != "resizer"}
    (root / "dataset.json").write_text(json.dumps({"format_version": 1, "preprocessing": old}))
    problem = DatasetRoot(root, prep).settings_problem()
    if accepted:
        assert problem is None
    else:
        assert problem is not None and "resizer 'Pillow' -> 'torch" in problem
