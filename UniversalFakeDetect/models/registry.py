"""The ``--arch`` registry: one table from name to backbone builder, width and normalisation.

Heavy imports (torchvision models, open_clip) happen inside the builders, so ``--help`` and
argument checking stay fast. Pretrained weights are the default; ``weights="none"`` builds a
randomly initialised backbone, and a failed download stops with a message instead of silently
continuing with random weights.

The CLIP archs are OpenAI's own definitions: open_clip's ``-quickgelu`` configs, whose
transformers use QuickGELU as OpenAI's released weights were trained with (open_clip's plain
names use GELU, and only warn). ``ArchSpec.definition`` names the exact network; feature caches
and checkpoints record it, so features of another definition are never reused.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rfd_common.errors import UserError

if TYPE_CHECKING:  # torch is imported where models are built, so --help stays fast
    import torch
    from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
WEIGHT_CHOICES = ("pretrained", "none")


class WeightsUnavailableError(UserError):
    """Pretrained weights could not be loaded (offline, or not in the local cache)."""


@dataclass(frozen=True)
class ArchSpec:
    """How to build one ``--arch``: its source, feature width and input normalisation."""

    name: str
    source: str  # "torchvision" or "open_clip"
    model_name: str
    width: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    native_size: int = 224  # the input size the pretrained weights were trained at
    min_size: int = 32  # smallest input side the network accepts
    # Definitions recorded by earlier versions whose features equal this one's.
    same_features_as: tuple[str, ...] = ()

    @property
    def definition(self) -> str:
        """The exact network built: its library and that library's model name."""
        return f"{self.source}:{self.model_name}"


@dataclass
class Backbone:
    """A feature extractor: ``module(images) -> [B, width]`` for normalised images."""

    module: nn.Module
    spec: ArchSpec
    weights: str

    @property
    def width(self) -> int:
        return self.spec.width


def _imagenet(name: str, width: int, min_size: int = 32) -> ArchSpec:
    return ArchSpec(
        f"Imagenet:{name}",
        "torchvision",
        name,
        width,
        IMAGENET_MEAN,
        IMAGENET_STD,
        min_size=min_size,
    )


def _clip(name: str, width: int, min_size: int = 32, resnet: bool = False) -> ArchSpec:
    """OpenAI's CLIP image encoder ``name`` (QuickGELU). The ResNets' image towers use ReLU,
    so their features are those of open_clip's plain config, which earlier versions built."""
    return ArchSpec(
        f"CLIP:{name}",
        "open_clip",
        f"{name.replace('/', '-')}-quickgelu",
        width,
        CLIP_MEAN,
        CLIP_STD,
        min_size=min_size,
        same_features_as=(f"open_clip:{name}",) if resnet else (),
    )


ARCHS: dict[str, ArchSpec] = {
    spec.name: spec
    for spec in (
        _imagenet("resnet18", 512, min_size=16),
        _imagenet("resnet34", 512, min_size=16),
        _imagenet("resnet50", 2048),
        _imagenet("resnet101", 2048),
        _imagenet("resnet152", 2048),
        _imagenet("vgg11", 4096),
        _imagenet("vgg19", 4096),
        _imagenet("vit_b_16", 768, min_size=16),
        _clip("RN50", 1024, resnet=True),
        _clip("RN101", 512, resnet=True),
        _clip("ViT-L/14", 768, min_size=14),
    )
}


def resolve_arch(name: str) -> ArchSpec:
    """The spec of ``name``; an unknown name lists the valid ones and the closest match."""
    if name in ARCHS:
        return ARCHS[name]
    close = difflib.get_close_matches(name, ARCHS, n=1, cutoff=0.4)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise UserError(f"--arch {name}: unknown architecture.{hint} Valid: {', '.join(ARCHS)}")


def legacy_definition(arch: str) -> str:
    """The definition built for ``arch`` by versions that did not record one (checkpoint
    format 1): the arch's own model name, with open_clip's plain (GELU) config for CLIP."""
    spec = resolve_arch(arch)
    return f"{spec.source}:{spec.name.split(':', 1)[1]}"


def same_features(spec: ArchSpec, definition: str) -> bool:
    """Whether a network recorded as ``definition`` computes the features ``spec`` builds."""
    return definition == spec.definition or definition in spec.same_features_as


def _strip_torchvision_head(model: nn.Module, model_name: str) -> nn.Module:
    from torch import nn

    if model_name.startswith("resnet"):
        model.fc = nn.Identity()
    elif model_name.startswith("vgg"):
        # the penultimate fc (4096) and its ReLU, without the Dropout that follows it: the
        # original takes its features there (its own dropout is the detector's, before fc)
        model.classifier = model.classifier[:-2]
    elif model_name.startswith("vit"):
        model.heads = nn.Identity()
    return model


def _torchvision_weights_message(spec: ArchSpec, exc: Exception) -> str:
    torch_home = os.environ.get("TORCH_HOME", "~/.cache/torch")
    return (
        f"--arch {spec.name}: could not load the ImageNet weights of torchvision's "
        f"{spec.model_name} ({type(exc).__name__}: {exc}). They download from torchvision's "
        f"URL into {torch_home}/hub/checkpoints; offline, copy the .pth file there (or set "
        "TORCH_HOME), or pass --weights none to train from random initialisation."
    )


def _build_torchvision(spec: ArchSpec, weights: str, image_size: int | None) -> nn.Module:
    import torchvision

    if weights == "none":
        kwargs = (
            {"image_size": image_size} if spec.model_name.startswith("vit") and image_size else {}
        )
        model = torchvision.models.get_model(spec.model_name, weights=None, **kwargs)
    else:
        try:
            model = torchvision.models.get_model(spec.model_name, weights="DEFAULT")
        except (OSError, RuntimeError, ValueError) as exc:
            raise WeightsUnavailableError(_torchvision_weights_message(spec, exc)) from exc
    return _strip_torchvision_head(model, spec.model_name)


def _build_open_clip(spec: ArchSpec, weights: str, image_size: int | None) -> nn.Module:
    import open_clip

    kwargs = {"force_image_size": image_size} if image_size else {}
    if weights == "none":
        model = open_clip.create_model(spec.model_name, pretrained=None, **kwargs)
    else:
        try:
            model = open_clip.create_model(
                spec.model_name, pretrained="openai", require_pretrained=True, **kwargs
            )
        except (OSError, RuntimeError, ValueError) as exc:
            raise WeightsUnavailableError(
                f"--arch {spec.name}: could not load open_clip's 'openai' weights for "
                f"{spec.model_name} ({type(exc).__name__}: {exc}). open_clip fetches them from "
                "the Hugging Face Hub into ~/.cache/huggingface (HF_HOME moves it); offline, "
                "download them once on a connected machine and copy the cache, set "
                "HF_HUB_OFFLINE=1 to use it, or pass --weights none for random weights."
            ) from exc
    return model.visual


_BUILDERS: dict[str, Callable[[ArchSpec, str, int | None], nn.Module]] = {
    "torchvision": _build_torchvision,
    "open_clip": _build_open_clip,
}


def build_backbone(
    arch: str, weights: str = "pretrained", image_size: int | None = None
) -> Backbone:
    """Build the backbone of ``arch`` with ``weights`` (``pretrained`` or ``none``).

    ``image_size`` adapts models with a fixed input size (ViT, CLIP) to another size; it is only
    honoured with random weights or where the model supports it.
    """
    spec = resolve_arch(arch)
    if image_size is not None and image_size < spec.min_size:
        raise UserError(
            f"--cropSize {image_size}: too small for {arch}, which needs at least "
            f"{spec.min_size} px; raise --loadSize/--cropSize"
        )
    if weights not in WEIGHT_CHOICES:
        raise UserError(f"--weights {weights}: expected one of {', '.join(WEIGHT_CHOICES)}")
    module = _BUILDERS[spec.source](spec, weights, image_size)
    return Backbone(module=module, spec=spec, weights=weights)


def normalisation(spec: ArchSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std as [1, 3, 1, 1] tensors."""
    import torch

    return torch.tensor(spec.mean).view(1, 3, 1, 1), torch.tensor(spec.std).view(1, 3, 1, 1)
