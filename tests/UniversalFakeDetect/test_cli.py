"""test.py and detect.py end to end on a checkpoint trained here; robustness table."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from torchvision import transforms

from tests.help_imports import heavy_modules_loaded_by_help
from tests.UniversalFakeDetect.report.page_parts import page_parts
from UniversalFakeDetect import detect, train
from UniversalFakeDetect import test as test_cli
from UniversalFakeDetect.checkpoint import load_checkpoint
from UniversalFakeDetect.evaluation.robustness import PERTURBATIONS


@pytest.fixture(scope="module")
def trained(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoints folder with one detector trained for one epoch on the tiny dataset."""
    folder = tmp_path_factory.mktemp("run")
    code = train.main(
        [
            "--data_root", str(tiny_root), "--preset", "demo", "--niter", "1",
            "--batch_size", "16", "--name", "tiny", "--gpu_ids", "-1",
            "--checkpoints_dir", str(folder / "ckpt"), "--result_folder", str(folder / "res"),
        ]
    )  # fmt: skip
    assert code == 0
    return folder


def test_test_cli_defaults_to_the_newest_checkpoint(trained: Path, capsys) -> None:
    args = ["--checkpoints_dir", str(trained / "ckpt"), "--result_folder", str(trained / "t")]
    assert test_cli.main([*args, "--name", "again", "--robustness"]) == 0
    folder = trained / "t" / "again"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["info"]["checkpoint"].endswith("tiny/model_best.safetensors")
    with open(folder / "robustness.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [r["perturbation"] for r in table] == ["clean", *PERTURBATIONS]
    clean = json.loads((trained / "res" / "tiny" / "metrics.json").read_text())["summary"]
    assert float(table[0]["accuracy"]) == pytest.approx(clean["accuracy"])
    assert "robustness table" in capsys.readouterr().out
    page = page_parts((folder / "report.html").read_text())  # the run's report.html
    sources = [m["source"] for m in metrics["sources"]]
    assert [row[0] for row in page.tables["source-table"][1:]] == [*sources, "mean"]
    assert [row[0] for row in page.tables["robustness-table"][1:]] == ["clean", *PERTURBATIONS]
    assert any(i["src"].startswith("data:image/jpeg;base64,") for i in page.images)


def test_universalfakedetect_validate_flags(trained: Path, tiny_root: Path, capsys) -> None:
    """--real_path/--fake_path, --max_sample, --jpeg_quality and --gaussian_sigma as in UFD."""
    val = tiny_root / "ImageData" / "val"
    args = ["--checkpoints_dir", str(trained / "ckpt"), "--result_folder", str(trained / "u"),
            "--real_path", str(val / "skimage-gray"), "--fake_path", str(val / "deconv-decoder"),
            "--max_sample", "4", "--jpeg_quality", "50", "--gaussian_sigma", "1",
            "--name", "ufd"]  # fmt: skip
    assert test_cli.main(args) == 0
    metrics = json.loads(
        (trained / "u" / "ufd" / "blur_sigma1+jpeg_q50" / "metrics.json").read_text()
    )
    sources = {m["source"]: m for m in metrics["sources"]}
    assert set(sources) == {"skimage-gray-real", "deconv-decoder"}
    assert all(m["images"] == 4 for m in sources.values())
    assert sources["deconv-decoder"]["ap"] is not None
    assert metrics["info"]["perturbation"] == "blur_sigma1+jpeg_q50"
    capsys.readouterr()
    assert test_cli.main([*args[:4], "--real_path", str(val / "skimage-gray")]) == 2
    assert "--real_path and --fake_path go together" in capsys.readouterr().err
    assert test_cli.main([*args, "--jpeg_quality", "101"]) == 2
    assert "--jpeg_quality 101: must be from 1 to 100" in capsys.readouterr().err


def test_detect_scores_files_and_folders(
    trained: Path, tiny_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tiny_root / "ImageData" / "val" / "deconv-decoder"
    single = tiny_root / "ImageData" / "val" / "skimage-photos" / "00000.jpg"
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    out = tmp_path / "verdicts.json"
    ckpt = trained / "ckpt" / "tiny" / "model_best.safetensors"
    argv = ["--ckpt", str(ckpt), str(single), str(folder), str(broken), "--output", str(out)]
    (folder / "notes.txt").write_text("not an image")
    try:
        assert detect.main(argv) == 0
    finally:
        (folder / "notes.txt").unlink()
    results = {Path(r["path"]): r for r in json.loads(out.read_text())}
    images = sorted(folder.glob("*.jpg"))
    assert set(results) == {single, broken, *images}
    assert results[broken]["verdict"] == "unreadable" and results[broken]["prob_fake"] is None
    assert "cannot identify image file" in results[broken]["error"]
    # each probability is the detector's on the original's test view, computed independently:
    # torchvision's Resize(loadSize) (shorter side) + CenterCrop(cropSize) + ToTensor
    detector, header = load_checkpoint(ckpt)
    view = transforms.Compose(
        [transforms.Resize(header["load_size"]), transforms.CenterCrop(header["crop_size"]),
         transforms.ToTensor()]
    )  # fmt: skip
    for path in [single, *images]:
        with Image.open(path) as image:
            batch = view(image.convert("RGB")).unsqueeze(0)
        with torch.no_grad():
            expected = torch.sigmoid(detector(batch)).item()
        assert results[path]["prob_fake"] == pytest.approx(expected, abs=2e-6)
        assert results[path]["verdict"] == ("fake" if expected >= 0.5 else "real")
    assert "notes.txt" in capsys.readouterr().err  # passed over by name, not silently


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["/no/such/image.jpg"], "/no/such/image.jpg: no such file"),
        (["--threshold", "2", "{img}"], "--threshold 2"),
        (["--output", "x.txt", "{img}"], "--output x.txt"),
        (["--ckpt", "/no/ckpt.safetensors", "{img}"], "--ckpt /no/ckpt.safetensors"),
        (["--output", "/dev/null/x.csv", "{img}"], "--output /dev/null/x.csv: its folder"),
        (["--batch_size", "0", "{img}"], "--batch_size 0: must be at least 1"),
    ],
)
def test_detect_bad_input(trained: Path, tiny_root: Path, capsys, argv, needle) -> None:
    image = str(next((tiny_root / "ImageData" / "val").rglob("*.jpg")))
    ckpt = ["--checkpoints_dir", str(trained / "ckpt")]
    assert detect.main([a.replace("{img}", image) for a in argv] + ckpt) == 2
    assert needle in capsys.readouterr().err


def test_test_cli_without_checkpoints(tmp_path: Path, capsys) -> None:
    assert test_cli.main(["--checkpoints_dir", str(tmp_path)]) == 2
    assert "no */*.safetensors checkpoint" in capsys.readouterr().err


def test_published_linear_head_is_tested_on_its_backbone(
    tiny_root: Path, tmp_path: Path, capsys
) -> None:
    """UniversalFakeDetect's fc_weights.pth on CLIP:ViT-L/14 (random weights offline)."""
    head = Path(__file__).resolve().parents[1] / "data" / "univfd_fc_weights.pth"
    argv = [
        "--ckpt", str(head), "--arch", "CLIP:ViT-L/14", "--weights", "none",
        "--data_root", str(tiny_root), "--loadSize", "32", "--cropSize", "28",
        "--result_folder", str(tmp_path), "--name", "univfd", "--gpu_ids", "-1",
    ]  # fmt: skip
    assert test_cli.main(argv) == 0
    assert "RANDOM backbone (--weights none)" in capsys.readouterr().err
    metrics = json.loads((tmp_path / "univfd" / "metrics.json").read_text())
    assert metrics["info"]["arch"] == "CLIP:ViT-L/14"
    assert test_cli.main([a for a in argv if a not in ("--arch", "CLIP:ViT-L/14")]) == 2


@pytest.mark.parametrize("module", ["train", "test", "detect"])
def test_help_does_not_import_torch(module: str) -> None:
    """--help parses flags only: the heavy libraries load after it (DESIGN 10)."""
    assert "torch" not in heavy_modules_loaded_by_help(f"UniversalFakeDetect.{module}")
