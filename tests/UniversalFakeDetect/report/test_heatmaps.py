"""``report RUN_DIR --heatmaps``: a Grad-CAM overlay beside every gallery thumbnail, at the
thumbnail's size, for the class the gallery is about; clear errors for a bad checkpoint."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.UniversalFakeDetect.heatmaps.tiny_models import tiny_checkpoint
from tests.UniversalFakeDetect.report.chromium import chromium_binary, load_page
from tests.UniversalFakeDetect.report.conftest import (
    SOURCES,
    metrics_document,
    predictions,
    write_csv,
    write_image,
)
from tests.UniversalFakeDetect.report.page_parts import page_parts
from tests.UniversalFakeDetect.report.test_browser import PROBE
from UniversalFakeDetect.checkpoint import load_checkpoint, save_checkpoint
from UniversalFakeDetect.data.datasets import read_image
from UniversalFakeDetect.data.transforms import TransformConfig, eval_view
from UniversalFakeDetect.report.__main__ import main
from UniversalFakeDetect.report.run_data import Prediction, confident_mistakes

HEATMAP_ALT = "Grad-CAM heat map ("
PER_SOURCE = 4


def mistakes_shown() -> int:
    """How many mistakes the page shows: up to PER_SOURCE per source at threshold 0.5."""
    rows = [Prediction(r["path"], r["source"], r["label"], r["prob_fake"]) for r in predictions()]
    return sum(len(found.shown) for found in confident_mistakes(rows, 0.5, PER_SOURCE))


def pixels(uri: str) -> np.ndarray:
    """The decoded pixels of a JPEG data URI."""
    assert uri.startswith("data:image/jpeg;base64,")
    with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float32)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ResNet-18 detector checkpoint for 64 px crops (a 2x2 Grad-CAM grid)."""
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "model_best.safetensors")


@pytest.fixture(scope="module")
def heatmap_run(tmp_path_factory: pytest.TempPathFactory, checkpoint: Path) -> Path:
    """A test run recording ``checkpoint``, its images on disk but one mistake's, and its
    report rebuilt with --heatmaps (PER_SOURCE mistakes per source)."""
    tmp = tmp_path_factory.mktemp("heatmap-run")
    rows, root, folder = predictions(), tmp / "data", tmp / "results" / "run"
    for k, row in enumerate(rows):
        if k != 0:  # rows[0]: a real image scored 0.9, among the shown mistakes, is missing
            write_image(root / row["path"], seed=k, size=40 + k % 3 * 10)
    folder.mkdir(parents=True)
    document = metrics_document(rows, root)
    document["info"]["checkpoint"] = str(checkpoint)
    (folder / "metrics.json").write_text(json.dumps(document))
    write_csv(folder / "predictions.csv", rows)
    assert main([str(folder), "--heatmaps", "--per_source", str(PER_SOURCE)]) == 0
    return folder


def thumb_pairs(page: Path) -> tuple[list[dict], list[tuple[dict, dict]]]:
    """The page's thumbnails (JPEG <img>s), and each overlay with the thumbnail before it."""
    images = [i for i in page_parts(page.read_text()).images if i["src"].startswith("data:image/")]
    thumbs = [i for i in images if not i["alt"].startswith(HEATMAP_ALT)]
    pairs = [
        (images[k - 1], image)
        for k, image in enumerate(images)
        if image["alt"].startswith(HEATMAP_ALT)
    ]
    return thumbs, pairs


def test_every_thumbnail_has_an_overlay_of_its_size(heatmap_run: Path) -> None:
    thumbs, pairs = thumb_pairs(heatmap_run / "report.html")
    assert len(pairs) == len(thumbs) == mistakes_shown() - 1 > 4  # the missing image: no pair
    for thumb, heatmap in pairs:
        assert heatmap["alt"].endswith(f" of {thumb['alt']}")
        assert (heatmap["width"], heatmap["height"]) == (thumb["width"], thumb["height"])
        plain, overlay = pixels(thumb["src"]), pixels(heatmap["src"])
        assert overlay.shape == plain.shape == (int(thumb["height"]), int(thumb["width"]), 3)
        assert np.abs(overlay - plain).mean() > 10  # coloured, not a copy of the thumbnail


def test_the_class_explained_is_the_galleries(heatmap_run: Path) -> None:
    """A real image among the mistakes is explained as fake, a fake one as real."""
    _, pairs = thumb_pairs(heatmap_run / "report.html")
    for thumb, heatmap in pairs:
        source = thumb["alt"].split("/")[2]
        explained = "real" if SOURCES[source] else "fake"
        assert heatmap["alt"].startswith(f"{HEATMAP_ALT}{explained}) of ")
    text = (heatmap_run / "report.html").read_text()
    assert "not found" in text and "Grad-CAM heat map of the detector" in text


@pytest.mark.skipif(chromium_binary() is None, reason="no Chromium binary on PATH")
def test_the_page_with_overlays_loads_cleanly_in_chromium(heatmap_run: Path) -> None:
    binary = chromium_binary()
    assert binary is not None
    value, problems = load_page(binary, heatmap_run / "report.html", PROBE)
    assert problems == []
    images = json.loads(value)["images"]
    assert sum(i["alt"].startswith(HEATMAP_ALT) for i in images) == mistakes_shown() - 1
    assert all(i["scheme"] == "data" and i["loaded"] for i in images), images


def independent_verdict(checkpoint: Path, image_path: Path) -> str:
    """The detector's verdict on one image by a plain forward pass (no Grad-CAM)."""
    detector, header = load_checkpoint(checkpoint)
    view = eval_view(
        read_image(image_path),
        TransformConfig(header["load_size"], header["crop_size"], flip=False),
    )
    with torch.no_grad():
        return "fake" if torch.sigmoid(detector.eval()(view[None]))[0] >= 0.5 else "real"


def split_checkpoint(checkpoint: Path, images: list[Path], out: Path) -> Path:
    """``checkpoint`` with its bias moved to the median logit of ``images``: half its
    verdicts fake, half real (a random network calls nearly everything one class)."""
    detector, header = load_checkpoint(checkpoint)
    transform = TransformConfig(header["load_size"], header["crop_size"], flip=False)
    views = torch.stack([eval_view(read_image(path), transform) for path in images])
    with torch.no_grad():
        detector.fc.bias -= detector.eval()(views).median()
    return save_checkpoint(detector, out, load_size=transform.load_size,
                           crop_size=transform.crop_size)  # fmt: skip


def test_queried_images_are_explained_for_their_verdict(
    al_folder: Path, checkpoint: Path, dataset: Path, tmp_path: Path
) -> None:
    pool = sorted((dataset / "ImageData" / "train").rglob("*.jpg"))
    checkpoint = split_checkpoint(checkpoint, pool, tmp_path / "split.safetensors")
    argv = [str(al_folder), "--heatmaps", "--checkpoint", str(checkpoint)]
    assert main([*argv, "--per_source", "0", "--per_iteration", "8"]) == 0
    _, pairs = thumb_pairs(al_folder / "report.html")
    seen = set()
    for _, heatmap in pairs:
        explained, path = heatmap["alt"][len(HEATMAP_ALT) :].split(") of ", 1)
        seen.add(explained)
        assert explained == independent_verdict(checkpoint, dataset / path), heatmap["alt"]
    assert seen == {"fake", "real"}  # a rule that always explains one class fails


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--checkpoint", "{tmp}/c.safetensors"], "--checkpoint {tmp}/c.safetensors: only used "
         "with --heatmaps"),
        (["--heatmaps", "--checkpoint", "{tmp}/absent.safetensors"],
         "--checkpoint {tmp}/absent.safetensors: file not found"),
        (["--heatmaps", "--checkpoint", "{tmp}/junk.safetensors"],
         "--checkpoint {tmp}/junk.safetensors: not a safetensors checkpoint"),
        (["--heatmaps", "--checkpoint", "{tmp}/model.pth"],
         "--checkpoint {tmp}/model.pth: expected a detector checkpoint from train.py"),
        (["--heatmaps"], "--checkpoint x: file not found (the checkpoint recorded in "
         "metrics.json; give another with --checkpoint PATH)"),
    ],
)  # fmt: skip
def test_a_bad_checkpoint_exits_2_naming_the_flag(
    run_folder: Path, tmp_path: Path, capsys, argv: list[str], needle: str
) -> None:
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint")
    (tmp_path / "model.pth").write_bytes(b"not a checkpoint either")
    assert main([str(run_folder), *(a.format(tmp=tmp_path) for a in argv)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and needle.format(tmp=tmp_path) in err
    assert err.count("\n") == 1
    assert not (run_folder / "report.html").exists()


def test_a_run_without_a_recorded_checkpoint_asks_for_one(run_folder: Path, capsys) -> None:
    document = json.loads((run_folder / "metrics.json").read_text())
    del document["info"]["checkpoint"]
    (run_folder / "metrics.json").write_text(json.dumps(document))
    assert main([str(run_folder), "--heatmaps"]) == 2
    err = capsys.readouterr().err
    assert "records no detector checkpoint; give one with --checkpoint PATH" in err
