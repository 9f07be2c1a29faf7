"""``detect --explain DIR``: one overlay and one map per scored image, an index, clear errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.UniversalFakeDetect.heatmaps.tiny_models import tiny_checkpoint
from UniversalFakeDetect import detect
from UniversalFakeDetect.heatmaps import targets
from UniversalFakeDetect.heatmaps.gradcam import EXPLAIN_CHOICES

SIZES = {"wide.png": (100, 70), "tall.jpg": (60, 90)}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    """Two images in a folder, one with the same name in another, and a broken file."""
    rng = np.random.default_rng(0)
    paths = []
    for folder, name in (("a", "wide.png"), ("a", "tall.jpg"), ("b", "wide.png")):
        path = tmp_path / folder / name
        path.parent.mkdir(exist_ok=True)
        width, height = SIZES[name]
        Image.fromarray(rng.integers(0, 256, (height, width, 3), np.uint8)).save(path)
        paths.append(path)
    (tmp_path / "a" / "broken.jpg").write_bytes(b"not an image")
    return paths


def test_help_lists_the_flags() -> None:
    text = detect.build_parser().format_help()
    assert "--explain DIR" in text and "--explain_class" in text and "Grad-CAM" in text
    assert detect.EXPLAIN_CLASSES == EXPLAIN_CHOICES  # the flag's choices, kept torch-free


def test_explain_writes_one_overlay_per_image(
    checkpoint: Path, images: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, verdicts = tmp_path / "maps", tmp_path / "verdicts.json"
    argv = ["--ckpt", str(checkpoint), str(tmp_path / "a"), str(images[2]),
            "--explain", str(out), "--output", str(verdicts), "--gpu_ids", "-1"]  # fmt: skip
    assert detect.main(argv) == 0
    assert "heat maps of 3 images" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == [
        "heatmaps.csv", "tall.jpg.npy", "tall.jpg.png", "wide.png-2.npy", "wide.png-2.png",
        "wide.png.npy", "wide.png.png",
    ]  # fmt: skip
    with open(out / "heatmaps.csv", newline="") as handle:
        index = {row["path"]: row for row in csv.DictReader(handle)}
    results = {r["path"]: r for r in json.loads(verdicts.read_text())}
    assert results[str(tmp_path / "a" / "broken.jpg")]["heatmap"] is None
    plain = tmp_path / "plain.json"  # the same files scored without --explain
    assert detect.main([*argv[:4], "--output", str(plain), "--gpu_ids", "-1"]) == 0
    for record in json.loads(plain.read_text()):
        if record["prob_fake"] is not None:  # P(fake) from Grad-CAM's pass = a plain pass
            assert results[record["path"]]["prob_fake"] == pytest.approx(record["prob_fake"])
            assert float(index[record["path"]]["prob_fake"]) == pytest.approx(record["prob_fake"])
    for path in images:
        row, result = index[str(path)], results[str(path)]
        assert result["heatmap"] == str(out / row["overlay"])
        assert row["verdict"] == result["verdict"] == row["explained"]  # the verdict's class
        assert row["grid"] == "2x2"
        with Image.open(out / row["overlay"]) as overlay:
            assert overlay.size == SIZES[path.name]
        heat = np.load(out / row["map"])
        assert heat.shape == SIZES[path.name][::-1] and heat.dtype == np.float32
        assert np.isfinite(heat).all() and heat.min() >= 0 and heat.max() <= 1


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--explain_class", "fake"], "--explain_class fake: needs --explain DIR"),
        (["--explain", "{file}"], "exists and is not a folder"),
    ],
)
def test_explain_flag_errors(
    checkpoint: Path, images: list[Path], extra: list[str], needle: str, capsys
) -> None:
    argv = ["--ckpt", str(checkpoint), str(images[0])]
    assert detect.main(argv + [a.replace("{file}", str(images[1])) for a in extra]) == 2
    assert needle in capsys.readouterr().err


def test_an_arch_without_a_target_stops_before_writing(
    checkpoint: Path, images: list[Path], tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.delitem(targets.TARGET_LAYERS, "Imagenet:resnet18")
    out = tmp_path / "maps"
    assert detect.main(["--ckpt", str(checkpoint), str(images[0]), "--explain", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no Grad-CAM target layer is known for --arch Imagenet:resnet18" in err
    assert not out.exists()
