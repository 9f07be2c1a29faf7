"""Weights written by the original code: UniversalFakeDetect's and CS545's trainers, and the
bare linear heads they publish.

Their trainers save ``{"model": model.state_dict(), "optimizer": ..., "total_steps": N}``,
where ``model`` is a ``CLIPModel`` (keys ``model.<OpenAI CLIP>`` and ``fc.*``) or an
``ImagenetModel`` (``model.<network>`` and ``fc.*``), each name prefixed ``module.`` when
CS545 trained on several GPUs (DistributedDataParallel); a published head such as
``fc_weights.pth`` is the bare ``fc`` state dict (``weight`` [1, width], ``bias`` [1]).
This module turns either into a head and, for a whole model, the backbone's state dict in the
names of the networks this toolkit builds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from rfd_common.errors import UserError
from UniversalFakeDetect.models.registry import ArchSpec

# CS545's VGG splits torchvision's ``features`` into layer1..layer5 (keeping each module's
# index as its name) and names the classifier's linear layers fc1..fc3.
_VGG_FC = {"fc1": "classifier.0", "fc2": "classifier.3"}


@dataclass
class OriginalWeights:
    """A head (``weight``, ``bias``) and, for a whole saved model, the backbone's tensors."""

    head: dict[str, torch.Tensor]
    backbone: dict[str, torch.Tensor] | None


def _backbone_key(spec: ArchSpec, key: str) -> str | None:
    """The toolkit's name for the original backbone tensor ``key`` (``model.`` removed);
    ``None`` for tensors the toolkit's backbone does not have (text tower, ImageNet classifier)."""
    if spec.source == "open_clip":
        return key.removeprefix("visual.") if key.startswith("visual.") else None
    name = spec.model_name
    if name.startswith("resnet"):
        return None if key.startswith("fc.") else key
    if name.startswith("vit"):
        if key.startswith("heads."):
            return None
        return key.replace(".mlp.linear_1.", ".mlp.0.").replace(".mlp.linear_2.", ".mlp.3.")
    if name.startswith("vgg"):
        if match := re.fullmatch(r"layer\d\.(\d+\..+)", key):
            return f"features.{match.group(1)}"
        if match := re.fullmatch(r"(fc[12])\.(.+)", key):
            return f"{_VGG_FC[match.group(1)]}.{match.group(2)}"
        return None if key.startswith("fc3.") else key
    return key


def _head_of(state: Mapping[str, object], source: str) -> dict[str, torch.Tensor]:
    prefixed = {k.removeprefix("fc."): v for k, v in state.items() if k in ("fc.weight", "fc.bias")}
    bare = {k: v for k, v in state.items() if k in ("weight", "bias")}
    head = prefixed or bare
    if (
        (prefixed and bare)
        or set(head) != {"weight", "bias"}
        or not all(isinstance(v, torch.Tensor) for v in head.values())
    ):
        found = ", ".join(sorted(state)[:6])
        raise UserError(
            f"{source}: expected a linear head ('weight' and 'bias', or 'fc.weight' and "
            f"'fc.bias'), found {found or 'no tensors'}"
        )
    return head  # type: ignore[return-value]


def _without_ddp_prefix(state: Mapping[str, object]) -> Mapping[str, object]:
    """CS545 wraps the model in DistributedDataParallel on several GPUs, whose state dict
    names every tensor ``module.<name>``; the names of the model itself."""
    if state and all(k.startswith("module.") for k in state):
        return {k.removeprefix("module."): v for k, v in state.items()}
    return state


def _check_names(state: Mapping[object, object], source: str) -> Mapping[str, object]:
    """``state`` as a state dict (names to tensors), or a clear error."""
    if not all(isinstance(k, str) for k in state):
        raise UserError(f"{source}: expected a state dict (tensor names to tensors)")
    names = _without_ddp_prefix(state)  # type: ignore[arg-type]
    # Anything but a head and an original model's ``model.*`` would be ignored silently: a
    # toolkit checkpoint that lost its header, say, whose trained backbone would be dropped.
    known = {"weight", "bias", "fc.weight", "fc.bias"}
    others = sorted(
        k
        for k, v in names.items()
        if isinstance(v, torch.Tensor) and k not in known and not k.startswith("model.")
    )
    if others:
        raise UserError(
            f"{source}: holds tensors that belong neither to a linear head ('weight'/'bias', "
            "'fc.*') nor to an original UniversalFakeDetect/CS545 model ('model.*', 'fc.*'): "
            f"{', '.join(others[:3])}{', ...' if len(others) > 3 else ''} (a checkpoint of this "
            "toolkit keeps its header; one re-saved by another tool has lost it)"
        )
    return names


def split_original_state(obj: object, spec: ArchSpec | None, source: str) -> OriginalWeights:
    """The head and (for a whole model) backbone tensors of a loaded original file ``obj``.

    ``spec`` is the arch the file is put on; a whole model needs it (the file does not say).
    ``source`` names the file in messages.
    """
    if not isinstance(obj, Mapping):
        raise UserError(f"{source}: expected a state dict, found a {type(obj).__name__}")
    state = obj["model"] if isinstance(obj.get("model"), Mapping) else obj
    state = _check_names(state, source)
    head = _head_of(state, source)
    body = {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}
    if not body:
        return OriginalWeights(head=head, backbone=None)
    if spec is None:
        raise UserError(f"{source}: a whole saved model needs --arch (its backbone)")
    backbone = {}
    for key, value in body.items():
        ours = _backbone_key(spec, key)
        if ours is not None and isinstance(value, torch.Tensor):
            backbone[ours] = value
    if not backbone:
        raise UserError(
            f"{source}: none of its model.* tensors belong to a {spec.name} backbone; check --arch"
        )
    return OriginalWeights(head=head, backbone=backbone)
