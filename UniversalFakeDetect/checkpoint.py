"""Detector checkpoints: safetensors tensors plus a JSON header in the file's metadata.

The header records arch, the exact network (``definition``), weights, preprocessing, dropout,
threshold and training options, so a checkpoint rebuilds its detector alone. A frozen
pretrained backbone is not stored (the head only); a randomly initialised or fine-tuned
backbone is. :func:`load_detector` also takes a bare linear head (``.pth`` or ``.safetensors``,
e.g. UniversalFakeDetect's ``fc_weights.pth``) and the checkpoints of the original trainers.
Every way a file can be wrong ends in one :class:`UserError` naming the file.
"""

from __future__ import annotations

import json
import math
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from rfd_common.errors import UserError
from rfd_common.files import atomic_path
from UniversalFakeDetect.models.detector import Detector
from UniversalFakeDetect.models.factory import LOADED_WEIGHTS, create_detector
from UniversalFakeDetect.models.registry import (
    WEIGHT_CHOICES,
    ArchSpec,
    legacy_definition,
    resolve_arch,
    same_features,
)
from UniversalFakeDetect.original_checkpoints import OriginalWeights, split_original_state

HEADER_KEY = "rfd_header"
FORMAT_VERSION = 2  # 2: the header names the network's definition (CLIP with QuickGELU)
REQUIRED_HEADER = {
    "arch": str,
    "weights": str,
    "fix_backbone": bool,
    "dropout": (int, float),
    "stores_backbone": bool,
    "load_size": int,
    "crop_size": int,
}
OPTIONAL_HEADER = {  # may also be null
    "format_version": int,
    "definition": str,
    "image_size_override": int,
    "threshold": (int, float),
}


def stores_backbone(detector: Detector) -> bool:
    """A frozen pretrained backbone can be rebuilt from its weights; anything else is stored."""
    return not (detector.fix_backbone and detector.weights == "pretrained")


def detector_header(detector: Detector, **extra: Any) -> dict[str, Any]:
    """The JSON header of ``detector``'s checkpoint; ``extra`` adds preprocessing, options..."""
    return {
        "format_version": FORMAT_VERSION,
        "arch": detector.arch,
        "definition": detector.definition,
        "weights": detector.weights,
        "fix_backbone": detector.fix_backbone,
        "dropout": detector.dropout.p,
        "width": detector.width,
        "stores_backbone": stores_backbone(detector),
        **extra,
    }


def save_checkpoint(
    detector: Detector, path: Path, *, load_size: int, crop_size: int, **extra: Any
) -> Path:
    """Write ``detector`` to ``path`` atomically (head only for a frozen pretrained backbone)."""
    state = {k: v.detach().contiguous().cpu() for k, v in detector.state_dict().items()}
    if not stores_backbone(detector):
        state = {k: v for k, v in state.items() if k.startswith("fc.")}
    header = detector_header(detector, load_size=load_size, crop_size=crop_size, **extra)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={HEADER_KEY: json.dumps(header, sort_keys=True)})
    return path


def _safetensors_metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return handle.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise UserError(f"--ckpt {path}: not a safetensors checkpoint ({exc})") from exc


def _parse_header(text: str, path: Path) -> dict[str, Any]:
    """The header's JSON, checked for the keys and types loading needs."""
    redo = "the file is damaged or was not written by this toolkit: retrain, or restore it"
    try:
        header = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"--ckpt {path}: its header is not valid JSON ({exc}); {redo}") from exc
    if not isinstance(header, dict):
        raise UserError(f"--ckpt {path}: its header is not a JSON object; {redo}")
    missing = sorted(key for key in REQUIRED_HEADER if key not in header)
    if missing:
        raise UserError(f"--ckpt {path}: its header lacks {', '.join(missing)}; {redo}")
    fields = [(key, kind, header[key]) for key, kind in REQUIRED_HEADER.items()]
    fields += [
        (k, kind, header[k]) for k, kind in OPTIONAL_HEADER.items() if header.get(k) is not None
    ]
    for key, kind, value in fields:
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise UserError(f"--ckpt {path}: header field {key}={value!r} has a wrong type; {redo}")
    _check_header_values(header, path, redo)
    try:
        resolve_arch(header["arch"])
    except UserError as exc:
        raise UserError(f"--ckpt {path}: {exc}") from exc
    return header


def _check_header_values(header: dict[str, Any], path: Path, redo: str) -> None:
    """Values of the right type that no detector has (the types are checked already)."""

    def wrong(key: str, expected: str) -> UserError:
        value = header[key]
        return UserError(f"--ckpt {path}: header field {key}={value!r} is not {expected}; {redo}")

    if header["weights"] not in (*WEIGHT_CHOICES, LOADED_WEIGHTS):
        raise wrong("weights", f"one of {', '.join((*WEIGHT_CHOICES, LOADED_WEIGHTS))}")
    if not 0 <= header["dropout"] <= 1:  # also refuses NaN
        raise wrong("dropout", "a probability in [0, 1]")
    for key in ("load_size", "crop_size", "image_size_override"):
        if header.get(key) is not None and header[key] < 1:
            raise wrong(key, "a size of at least 1 px")
    threshold = header.get("threshold")  # may lie just outside [0, 1]: 'all fake' or 'all real'
    if threshold is not None and not math.isfinite(threshold):
        raise wrong("threshold", "a finite number")
    version = header.get("format_version") or 1
    if version > FORMAT_VERSION:
        raise UserError(
            f"--ckpt {path}: written in checkpoint format {version} by a newer version of this "
            f"toolkit (this one reads up to {FORMAT_VERSION}); update the toolkit"
        )
    if not header["stores_backbone"] and (
        header["weights"] != "pretrained" or not header["fix_backbone"]
    ):
        raise UserError(
            f"--ckpt {path}: its header says the backbone is not stored, but a "
            f"{'fine-tuned' if not header['fix_backbone'] else header['weights']} backbone "
            f"cannot be rebuilt without it; {redo}"
        )


def read_header(path: Path) -> dict[str, Any]:
    """The checked JSON header of a checkpoint, or a clear error for a file that is not one."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--ckpt {path}: file not found")
    metadata = _safetensors_metadata(path)
    if HEADER_KEY not in metadata:
        raise UserError(
            f"--ckpt {path}: safetensors file without a detector header (a bare linear head "
            "loads with --arch)"
        )
    return _parse_header(metadata[HEADER_KEY], path)


def _finite(tensor: torch.Tensor) -> bool:
    """Whether a tensor holds no NaN or infinity: its min and max are finite (they propagate
    NaN), 30 times as fast as ``isfinite(tensor).all()`` on the CPU."""
    if not tensor.is_floating_point() or tensor.numel() == 0:
        return True
    return all(bool(torch.isfinite(extreme)) for extreme in torch.aminmax(tensor))


def _check_finite(state: dict[str, torch.Tensor], path: Path) -> None:
    for name, tensor in state.items():
        if not _finite(tensor):
            raise UserError(
                f"--ckpt {path}: tensor {name} holds NaN or infinite values (training "
                "diverged?); use an earlier checkpoint, e.g. model_best or model_epoch_N"
            )


def _check_definition(spec: ArchSpec, header: dict[str, Any], path: Path) -> None:
    recorded = header.get("definition") or legacy_definition(spec.name)
    if same_features(spec, recorded):
        return
    why = ""
    if spec.source == "open_clip" and recorded.startswith("open_clip:"):
        why = " (OpenAI's CLIP uses QuickGELU; earlier versions of this toolkit built GELU)"
    raise UserError(
        f"--ckpt {path}: made on {recorded}, whose features differ from those of "
        f"{spec.definition}, the {spec.name} network built now{why}; retrain it (the feature "
        "cache is rebuilt for the new network automatically)"
    )


def _check_requested(
    header: dict[str, Any], path: Path, arch: str | None, weights: str | None
) -> None:
    if arch is not None and resolve_arch(arch).name != header["arch"]:
        raise UserError(
            f"--arch {arch}: contradicts --ckpt {path}, which holds a {header['arch']} detector; "
            "drop --arch (a checkpoint names its own) or pass a checkpoint of that arch"
        )
    if weights is not None and weights != header["weights"]:
        raise UserError(
            f"--weights {weights}: contradicts --ckpt {path}, whose backbone weights are "
            f"{header['weights']}; drop --weights"
        )


def load_checkpoint(
    path: Path, device: str = "cpu", arch: str | None = None, weights: str | None = None
) -> tuple[Detector, dict[str, Any]]:
    """Rebuild the detector stored in ``path``; returns it (eval mode) with its header.

    ``arch``/``weights``, when given, must agree with the header."""
    path = Path(path)
    header = read_header(path)
    _check_requested(header, path, arch, weights)
    spec = resolve_arch(header["arch"])
    _check_definition(spec, header, path)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise UserError(f"--ckpt {path}: cannot read its tensors ({exc})") from exc
    _check_finite(state, path)
    detector, _ = create_detector(
        header["arch"],
        header["weights"],
        crop_size=header.get("image_size_override") or header["crop_size"],
        dropout=header["dropout"],
        fix_backbone=header["fix_backbone"],
    )
    _load_state(detector, state, header["stores_backbone"], path)
    return detector.to(device).eval(), header


def _load_state(
    detector: Detector,
    state: dict[str, torch.Tensor],
    with_backbone: bool,
    path: Path,
    hint: str = "",
) -> None:
    try:
        missing, unexpected = detector.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        first = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
        message = f"--ckpt {path}: tensors do not match arch {detector.arch} ({first}){hint}"
        raise UserError(message) from exc
    if unexpected or (with_backbone and missing) or any(k.startswith("fc.") for k in missing):
        raise UserError(
            f"--ckpt {path}: tensors do not match arch {detector.arch} "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]}){hint}"
        )


def torch_load_untrusted(path: Path, label: str | None = None) -> object:
    """Load a ``.pth`` file from an untrusted source (tensors and plain data, no pickled code);
    ``label`` names the file in messages (default: its path)."""
    label = label or str(path)
    if Path(path).stat().st_size == 0:
        raise UserError(f"{label}: the file is empty (an interrupted download or copy?)")
    try:
        with warnings.catch_warnings():  # e.g. about the pickle protocol: noise to a user
            warnings.simplefilter("ignore")
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a bad or unsafe file
        raise UserError(_unloadable_message(label, exc)) from exc


def _unloadable_message(label: str, exc: Exception) -> str:
    """One line for a file ``torch.load(weights_only=True)`` refused; torch's own message is
    long and suggests ``weights_only=False``, which would run whatever code the file holds."""
    text = str(exc)
    if found := re.search(r"\bGLOBAL ([\w.]+)", text):
        return (
            f"{label}: refused, it holds pickled Python objects ({found.group(1)}), not only "
            "tensors, and unpickling them could run code; save the state dict alone "
            "(torch.save(model.state_dict(), ...)) or convert it to .safetensors"
        )
    advice = ("weights_only", "documentation", "file an issue")
    lines = [line.strip() for line in text.split("WeightsUnpickler error:")[-1].splitlines()]
    reasons = [line for line in lines if line and not any(a in line for a in advice)]
    reason = reasons[0] if reasons else type(exc).__name__
    return f"{label}: not a PyTorch weights file written by torch.save, or damaged ({reason})"


def read_original_weights(
    path: Path, spec: ArchSpec | None, label: str | None = None
) -> OriginalWeights:
    """A bare head (``.pth``/``.pt``/``.bin`` or ``.safetensors``) or an original trainer's
    checkpoint, split into head and backbone tensors; ``label`` names the file in messages."""
    path = Path(path)
    label = label or str(path)
    if not path.is_file():
        raise UserError(f"{label}: file not found")
    if path.suffix == ".safetensors":
        _safetensors_metadata(path)  # a clear message for a file that is not safetensors
        try:
            obj: object = load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise UserError(f"{label}: cannot read its tensors ({exc})") from exc
    else:
        obj = torch_load_untrusted(path, label)
    weights = split_original_state(obj, spec, label)
    _check_finite(weights.head, path)
    if weights.backbone is not None:
        _check_finite(weights.backbone, path)
    return weights


def _put_head(detector: Detector, head: dict[str, torch.Tensor], label: str) -> Detector:
    weight, bias = head["weight"], head["bias"]
    if tuple(weight.shape) != (1, detector.width) or tuple(bias.shape) != (1,):
        raise UserError(
            f"{label}: a head of shape {tuple(weight.shape)} does not fit {detector.arch}, whose "
            f"features are {detector.width} wide (expected weight (1, {detector.width}))"
        )
    detector.fc.load_state_dict({"weight": weight.float(), "bias": bias.float()})
    return detector


def load_linear_head(detector: Detector, path: Path) -> Detector:
    """Load a published linear head (``weight`` [1, width], ``bias`` [1]; ``fc.`` prefixes
    accepted) from a ``.pth`` (weights only) or ``.safetensors`` file into ``detector``."""
    return _put_head(detector, read_original_weights(path, None).head, str(path))


def _is_toolkit_checkpoint(path: Path) -> bool:
    return path.suffix == ".safetensors" and HEADER_KEY in _safetensors_metadata(path)


def _whole_model(original: OriginalWeights, spec: ArchSpec, crop_size: int, path: Path) -> Detector:
    """The detector of an original trainer's whole saved model (backbone weights from it)."""
    detector, _ = create_detector(
        spec.name, LOADED_WEIGHTS, crop_size, dropout=0.0, fix_backbone=True
    )
    state = {f"backbone.{k}": v for k, v in original.backbone.items()}  # type: ignore[union-attr]
    state.update({f"fc.{k}": v for k, v in original.head.items()})
    _load_state(detector, state, with_backbone=True, path=path, hint="; is --arch right?")
    return detector


def _head_on_backbone(
    head: dict[str, torch.Tensor], spec: ArchSpec, weights: str, crop_size: int, seed: int,
    path: Path,
) -> Detector:  # fmt: skip
    """A bare head on ``spec``'s frozen backbone with ``weights`` (random ones from ``seed``)."""
    if weights == "none":
        print(
            f"WARNING: {path.name} is a head trained on a pretrained {spec.name}; on a RANDOM "
            "backbone (--weights none) its verdicts mean nothing (use this for tests only)",
            file=sys.stderr,
        )
    with torch.random.fork_rng(devices=[]):  # the same random backbone for the same seed
        torch.manual_seed(seed)
        detector, _ = create_detector(spec.name, weights, crop_size, dropout=0.0, fix_backbone=True)
    return _put_head(detector, head, f"--ckpt {path}")


def load_detector(
    path: Path,
    arch: str | None = None,
    weights: str | None = None,
    crop_size: int = 224,
    device: str = "cpu",
    seed: int = 0,
) -> tuple[Detector, dict[str, Any]]:
    """Any detector file, in eval mode, with its header (``seed`` draws a random backbone):

    - a toolkit checkpoint (``.safetensors`` with a header; ``arch``/``weights`` must agree);
    - a bare linear head (``weight``/``bias``, ``.pth`` or ``.safetensors``, e.g.
      UniversalFakeDetect's ``fc_weights.pth``) put on ``arch``'s frozen backbone with
      ``weights`` (pretrained by default);
    - a checkpoint of the original trainers (``{"model": state_dict, ...}``): a head as above,
      or a whole model whose backbone weights come from the file (built at its native size).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--ckpt {path}: file not found")
    if _is_toolkit_checkpoint(path):
        return load_checkpoint(path, device=device, arch=arch, weights=weights)
    if arch is None:
        raise UserError(
            f"--ckpt {path}: a bare linear head or an original UniversalFakeDetect/CS545 "
            "checkpoint needs --arch (CLIP:ViT-L/14 for UniversalFakeDetect's fc_weights.pth)"
        )
    spec = resolve_arch(arch)
    original = read_original_weights(path, spec, f"--ckpt {path}")
    if original.backbone is not None:
        if weights is not None:
            raise UserError(
                f"--weights {weights}: --ckpt {path} is a whole saved model, whose backbone "
                "weights come from the file; drop --weights"
            )
        detector = _whole_model(original, spec, crop_size, path)
    else:
        detector = _head_on_backbone(
            original.head, spec, weights or "pretrained", crop_size, seed, path
        )
    header = {
        "arch": spec.name,
        "definition": spec.definition,
        "weights": detector.weights,
        "fix_backbone": True,
        "load_size": 256,
        "crop_size": crop_size,
        "source": f"{'model' if original.backbone is not None else 'linear head'} {path.name}",
    }
    return detector.to(device).eval(), header
