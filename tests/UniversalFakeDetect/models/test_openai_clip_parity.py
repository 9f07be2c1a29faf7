"""The CLIP archs are OpenAI's CLIP: with the same (random) weights, OpenAI's image encoder
re-expressed in ``openai_clip_reference`` followed by UniversalFakeDetect's published head gives
the project's logit, through the Python API, ``detect`` and ``test.sh``.

The reference preprocessing is the original's too, built from torchvision here: resize the
shorter side, centre crop, ``ToTensor``, CLIP's normalisation.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from tests.UniversalFakeDetect.models.openai_clip_reference import openai_image_encoder
from UniversalFakeDetect import detect
from UniversalFakeDetect import test as test_cli
from UniversalFakeDetect.checkpoint import load_linear_head, torch_load_untrusted
from UniversalFakeDetect.models.detector import Detector
from UniversalFakeDetect.models.registry import CLIP_MEAN, CLIP_STD, build_backbone

UFD_HEAD = Path(__file__).resolve().parents[2] / "data" / "univfd_fc_weights.pth"
LOAD, CROP = 32, 28  # ViT-L/14 at 28 px: 2 x 2 patches, so the 24 blocks run in seconds
TOLERANCE = 1e-4  # on logits; probabilities are compared to TOLERANCE / 4 (sigmoid' <= 1/4)


def reference_encoder(arch: str, backbone: torch.nn.Module, size: int) -> torch.nn.Module:
    """OpenAI's encoder of ``arch`` holding ``backbone``'s weights (every tensor must fit)."""
    with torch.device("meta"):
        reference = openai_image_encoder(arch, size)
    reference.load_state_dict(backbone.state_dict(), strict=True, assign=True)
    return reference.eval()


def reference_crops(paths: list[Path], load: int = LOAD, crop: int = CROP) -> torch.Tensor:
    """The original's test view (shorter side resized, centre crop) in [0, 1], by torchvision."""
    view = transforms.Compose(
        [transforms.Resize(load), transforms.CenterCrop(crop), transforms.ToTensor()]
    )
    crops = []
    for path in paths:
        with Image.open(path) as image:
            crops.append(view(image.convert("RGB")))
    return torch.stack(crops)


def clip_normalise(crops: torch.Tensor) -> torch.Tensor:
    mean, std = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (crops - mean) / std


def published_head() -> torch.nn.Linear:
    state = torch_load_untrusted(UFD_HEAD)
    head = torch.nn.Linear(768, 1)
    head.load_state_dict({"weight": state["weight"].float(), "bias": state["bias"].float()})
    return head.eval()


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real/fake folders of photos that are not square (so an aspect-ratio error shows)."""
    folder = tmp_path_factory.mktemp("clip_images")
    rng = np.random.default_rng(7)
    paths = {}
    for kind, sizes in (("real", [(44, 36), (36, 50)]), ("fake", [(40, 40), (61, 35)])):
        (folder / kind).mkdir()
        for i, (w, h) in enumerate(sizes):
            base = rng.integers(0, 256, (h // 4 + 1, w // 4 + 1, 3), dtype=np.uint8)
            image = Image.fromarray(base).resize((w, h), Image.Resampling.BICUBIC)
            path = folder / kind / f"{i}.png"
            image.save(path)
            paths[f"{kind}/{i}"] = path
    return paths


@pytest.fixture(scope="module")
def vit_l14_reference() -> dict[str, object]:
    """The random ViT-L/14 that detect/test.sh draw for --weights none --seed 0, as OpenAI's
    encoder, with the published head."""
    torch.manual_seed(0)
    backbone = build_backbone("CLIP:ViT-L/14", weights="none", image_size=CROP).module
    return {"encoder": reference_encoder("CLIP:ViT-L/14", backbone, CROP), "head": published_head()}


def reference_logits(reference: dict[str, object], paths: list[Path]) -> np.ndarray:
    with torch.no_grad():
        features = reference["encoder"](clip_normalise(reference_crops(paths)))  # type: ignore[operator]
        return reference["head"](features).squeeze(1).numpy()  # type: ignore[operator]


@pytest.mark.parametrize(("arch", "size"), [("CLIP:RN50", 64), ("CLIP:RN101", 64)])
def test_clip_resnets_are_openais(arch: str, size: int) -> None:
    """ModifiedResNet: OpenAI's stem, anti-aliased strides and attention pooling."""
    torch.manual_seed(1)
    detector = Detector(build_backbone(arch, weights="none", image_size=size), fix_backbone=True)
    with torch.no_grad():
        detector.fc.weight.normal_()
    reference = reference_encoder(arch, detector.backbone, size)
    x = torch.rand(2, 3, size, size)
    with torch.no_grad():
        expected = detector.fc(reference(clip_normalise(x))).squeeze(1)
        assert torch.allclose(detector.eval()(x), expected, atol=TOLERANCE, rtol=0)


def test_vit_l14_with_the_published_head_is_openais(
    vit_l14_reference: dict[str, object], images: dict[str, Path]
) -> None:
    """Python API: same weights, same images; plain GELU moves these logits by ~1e-2."""
    torch.manual_seed(0)
    backbone = build_backbone("CLIP:ViT-L/14", weights="none", image_size=CROP)
    detector = load_linear_head(Detector(backbone, dropout=0.0, fix_backbone=True), UFD_HEAD)
    paths = sorted(images.values())
    expected = reference_logits(vit_l14_reference, paths)
    with torch.no_grad():
        ours = detector.eval()(reference_crops(paths)).numpy()
    np.testing.assert_allclose(ours, expected, atol=TOLERANCE, rtol=0)
    assert np.abs(expected).max() > 10 * TOLERANCE  # logits far from 0: the check has teeth


def test_detect_scores_as_openais_vit_l14(
    vit_l14_reference: dict[str, object], images: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "verdicts.json"
    paths = sorted(images.values())
    argv = [
        "--ckpt", str(UFD_HEAD), "--arch", "CLIP:ViT-L/14", "--weights", "none",
        "--loadSize", str(LOAD), "--cropSize", str(CROP), "--gpu_ids", "-1",
        "--output", str(out), *map(str, paths),
    ]  # fmt: skip
    assert detect.main(argv) == 0
    probs = {Path(r["path"]): r["prob_fake"] for r in json.loads(out.read_text())}
    expected = 1 / (1 + np.exp(-reference_logits(vit_l14_reference, paths)))
    np.testing.assert_allclose([probs[p] for p in paths], expected, atol=TOLERANCE / 4, rtol=0)


def test_test_sh_scores_as_openais_vit_l14(
    vit_l14_reference: dict[str, object], images: dict[str, Path], tmp_path: Path
) -> None:
    real, fake = images["real/0"].parent, images["fake/0"].parent
    argv = [
        "--ckpt", str(UFD_HEAD), "--arch", "CLIP:ViT-L/14", "--weights", "none",
        "--real_path", str(real), "--fake_path", str(fake),
        "--loadSize", str(LOAD), "--cropSize", str(CROP), "--gpu_ids", "-1",
        "--result_folder", str(tmp_path), "--name", "univfd",
    ]  # fmt: skip
    assert test_cli.main(argv) == 0
    with open(tmp_path / "univfd" / "predictions.csv") as handle:
        rows = list(csv.DictReader(handle))
    root = Path(real).parent
    paths = [root / r["path"] for r in rows]
    assert sorted(paths) == sorted(images.values())
    expected = 1 / (1 + np.exp(-reference_logits(vit_l14_reference, paths)))
    probs = [float(r["prob_fake"]) for r in rows]
    np.testing.assert_allclose(probs, expected, atol=TOLERANCE / 4, rtol=0)
    metrics = json.loads((tmp_path / "univfd" / "metrics.json").read_text())
    assert metrics["info"]["arch"] == "CLIP:ViT-L/14"
