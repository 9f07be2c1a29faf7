"""Checkpoints: round trip, head-only for frozen pretrained backbones, the published UFD head."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rfd_common.errors import UserError
from UniversalFakeDetect.checkpoint import (
    load_checkpoint,
    load_linear_head,
    read_header,
    save_checkpoint,
)
from UniversalFakeDetect.models import factory
from UniversalFakeDetect.models.detector import Detector
from UniversalFakeDetect.models.registry import Backbone, build_backbone

UFD_HEAD = Path(__file__).resolve().parents[1] / "data" / "univfd_fc_weights.pth"


def small_detector(fix_backbone: bool = False, weights: str = "none") -> Detector:
    torch.manual_seed(0)
    backbone = build_backbone("Imagenet:resnet18", weights="none", image_size=32)
    backbone = Backbone(backbone.module, backbone.spec, weights=weights)
    return Detector(backbone, dropout=0.3, fix_backbone=fix_backbone).eval()


def test_round_trip_gives_identical_logits(tmp_path: Path) -> None:
    detector = small_detector()
    with torch.no_grad():
        detector.fc.weight.normal_()
    path = save_checkpoint(detector, tmp_path / "c.safetensors", load_size=32, crop_size=32)
    loaded, header = load_checkpoint(path)
    images = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(detector(images), loaded(images))
    assert header["arch"] == "Imagenet:resnet18" and header["dropout"] == 0.3
    assert header["stores_backbone"] and header["load_size"] == 32


def test_frozen_pretrained_backbone_stores_the_head_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    detector = small_detector(fix_backbone=True, weights="pretrained")
    path = save_checkpoint(detector, tmp_path / "head.safetensors", load_size=32, crop_size=32)
    from safetensors.torch import load_file

    assert set(load_file(str(path))) == {"fc.weight", "fc.bias"}
    assert read_header(path)["stores_backbone"] is False
    # loading rebuilds the pretrained backbone (stood in for by the same random module)
    monkeypatch.setattr(
        factory,
        "build_backbone",
        lambda arch, weights, image_size=None: Backbone(
            detector.backbone, detector_spec(detector), weights
        ),
    )
    loaded, _ = load_checkpoint(path)
    assert torch.equal(loaded.fc.weight, detector.fc.weight)


def detector_spec(detector: Detector):
    from UniversalFakeDetect.models.registry import resolve_arch

    return resolve_arch(detector.arch)


def test_universal_fake_detect_head_loads_into_clip_vit_l14() -> None:
    backbone = build_backbone("CLIP:ViT-L/14", weights="none", image_size=28)
    detector = Detector(backbone, fix_backbone=True)
    reference = torch.load(UFD_HEAD, map_location="cpu", weights_only=True)
    load_linear_head(detector, UFD_HEAD)
    assert torch.equal(detector.fc.weight, reference["weight"].float())
    assert torch.equal(detector.fc.bias, reference["bias"].float())
    with torch.no_grad():
        assert detector.eval()(torch.rand(1, 3, 28, 28)).shape == (1,)


def test_head_of_another_width_is_refused() -> None:
    detector = small_detector()
    with pytest.raises(UserError, match=r"does not fit Imagenet:resnet18.*512"):
        load_linear_head(detector, UFD_HEAD)


def test_checkpoint_of_another_arch_is_refused(tmp_path: Path) -> None:
    detector = small_detector()
    path = save_checkpoint(detector, tmp_path / "c.safetensors", load_size=32, crop_size=32)
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    metadata["rfd_header"] = metadata["rfd_header"].replace(
        "Imagenet:resnet18", "Imagenet:resnet50"
    )
    save_file(tensors, str(tmp_path / "wrong.safetensors"), metadata=metadata)
    with pytest.raises(UserError, match="made on torchvision:resnet18, whose features differ"):
        load_checkpoint(tmp_path / "wrong.safetensors")


def test_not_a_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "x.safetensors").write_bytes(b"garbage")
    with pytest.raises(UserError, match="not a safetensors checkpoint"):
        read_header(tmp_path / "x.safetensors")
    with pytest.raises(UserError, match="file not found"):
        read_header(tmp_path / "missing.safetensors")
