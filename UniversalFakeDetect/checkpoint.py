"""Detector checkpoints: safetensors tensors plus a JSON header in the file's metadata.

The header records arch, weights, preprocessing, dropout, threshold and training options, so a
checkpoint rebuilds its detector alone. A frozen pretrained backbone is not stored (the head
only); a randomly initialised or fine-tuned backbone is.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from datagen.errors import UserError
from datagen.fileio import atomic_path
from UniversalFakeDetect.models.detector import Detector
from UniversalFakeDetect.models.registry import build_backbone

HEADER_KEY = "rfd_header"
FORMAT_VERSION = 1


def stores_backbone(detector: Detector) -> bool:
    """A frozen pretrained backbone can be rebuilt from its weights; anything else is stored."""
    return not (detector.fix_backbone and detector.weights == "pretrained")


def detector_header(detector: Detector, **extra: Any) -> dict[str, Any]:
    """The JSON header of ``detector``'s checkpoint; ``extra`` adds preprocessing, options..."""
    return {
        "format_version": FORMAT_VERSION,
        "arch": detector.arch,
        "weights": detector.weights,
        "fix_backbone": detector.fix_backbone,
        "dropout": detector.dropout.p,
        "width": detector.width,
        "stores_backbone": stores_backbone(detector),
        **extra,
    }


def save_checkpoint(detector: Detector, path: Path, **extra: Any) -> Path:
    """Write ``detector`` to ``path`` atomically (head only for a frozen pretrained backbone)."""
    state = {k: v.detach().contiguous().cpu() for k, v in detector.state_dict().items()}
    if not stores_backbone(detector):
        state = {k: v for k, v in state.items() if k.startswith("fc.")}
    header = detector_header(detector, **extra)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={HEADER_KEY: json.dumps(header, sort_keys=True)})
    return path


def read_header(path: Path) -> dict[str, Any]:
    """The JSON header of a checkpoint, or a clear error for a file that is not one."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise UserError(f"--ckpt {path}: file not found")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise UserError(f"--ckpt {path}: not a safetensors checkpoint ({exc})") from exc
    if HEADER_KEY not in metadata:
        raise UserError(f"--ckpt {path}: safetensors file without a detector header")
    return json.loads(metadata[HEADER_KEY])


def load_checkpoint(path: Path, device: str = "cpu") -> tuple[Detector, dict[str, Any]]:
    """Rebuild the detector stored in ``path``; returns it (eval mode) with its header."""
    header = read_header(path)
    image_size = header.get("image_size_override")
    backbone = build_backbone(header["arch"], weights=header["weights"], image_size=image_size)
    detector = Detector(backbone, dropout=header["dropout"], fix_backbone=header["fix_backbone"])
    state = load_file(str(path))
    strict = header["stores_backbone"]
    try:
        missing, unexpected = detector.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        first = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
        raise UserError(
            f"--ckpt {path}: tensors do not match arch {header['arch']} ({first})"
        ) from exc
    if unexpected or (strict and missing) or any(k.startswith("fc.") for k in missing):
        raise UserError(
            f"--ckpt {path}: tensors do not match arch {header['arch']} "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    return detector.to(device).eval(), header


def torch_load_untrusted(path: Path) -> dict[str, torch.Tensor]:
    """Load a ``.pth`` state dict from an untrusted source (tensors only, no pickled code)."""
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a bad or unsafe file
        raise UserError(f"{path}: cannot load as a weights-only state dict ({exc})") from exc


def load_linear_head(detector: Detector, path: Path) -> Detector:
    """Load a published linear head (``weight`` [1, width], ``bias`` [1]; ``fc.`` prefixes
    accepted) from a ``.pth`` (weights only) or ``.safetensors`` file into ``detector``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    state = load_file(str(path)) if path.suffix == ".safetensors" else torch_load_untrusted(path)
    if not isinstance(state, dict):
        raise UserError(f"{path}: expected a state dict with 'weight' and 'bias'")
    state = {k.removeprefix("fc."): v for k, v in state.items()}
    weight, bias = state.get("weight"), state.get("bias")
    if weight is None or bias is None:
        raise UserError(f"{path}: expected keys 'weight' and 'bias', found {sorted(state)}")
    if tuple(weight.shape) != (1, detector.width) or tuple(bias.shape) != (1,):
        raise UserError(
            f"{path}: a head of shape {tuple(weight.shape)} does not fit {detector.arch}, whose "
            f"features are {detector.width} wide (expected weight (1, {detector.width}))"
        )
    detector.fc.load_state_dict({"weight": weight.float(), "bias": bias.float()})
    return detector


def load_detector(
    path: Path,
    arch: str | None = None,
    weights: str = "pretrained",
    crop_size: int = 224,
    device: str = "cpu",
) -> tuple[Detector, dict[str, Any]]:
    """A toolkit checkpoint (``.safetensors``), or a published bare linear head (``.pth`` with
    ``weight``/``bias``, e.g. UniversalFakeDetect's ``fc_weights.pth``) put on ``arch``'s frozen
    backbone. Returns the detector in eval mode and its header."""
    path = Path(path)
    if path.suffix != ".pth":
        return load_checkpoint(path, device=device)
    if arch is None:
        raise UserError(
            f"--ckpt {path}: a bare linear head needs --arch (CLIP:ViT-L/14 for "
            "UniversalFakeDetect's fc_weights.pth)"
        )
    image_size = crop_size if weights == "none" else None
    if weights == "none":
        print(
            f"WARNING: {path.name} is a head trained on a pretrained {arch}; on a RANDOM "
            "backbone (--weights none) its verdicts mean nothing (use this for tests only)",
            file=sys.stderr,
        )
    backbone = build_backbone(arch, weights=weights, image_size=image_size)
    detector = load_linear_head(Detector(backbone, dropout=0.0, fix_backbone=True), path)
    header = {
        "arch": arch,
        "weights": weights,
        "fix_backbone": True,
        "load_size": 256,
        "crop_size": crop_size,
        "source": f"linear head {path.name}",
    }
    return detector.to(device).eval(), header
