"""Missing pretrained weights stop the run with a message; never random weights unasked."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
from pathlib import Path

import pytest
import torch

from UniversalFakeDetect.models.registry import WeightsUnavailableError, build_backbone


def test_torchvision_weights_unreachable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsUnavailableError) as info:
        build_backbone("Imagenet:resnet18", weights="pretrained")
    message = str(info.value)
    assert "Imagenet:resnet18" in message and "--weights none" in message
    assert str(tmp_path) in message


def test_open_clip_weights_unavailable_offline(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    code = (
        "from UniversalFakeDetect.models.registry import build_backbone\n"
        "build_backbone('CLIP:RN50', weights='pretrained')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "WeightsUnavailableError" in result.stderr
    assert "CLIP:RN50" in result.stderr and "HF_HUB_OFFLINE" in result.stderr
