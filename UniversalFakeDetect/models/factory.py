"""The one way to build a detector: :func:`create_detector` returns the detector and the
preprocessing it expects (in the spirit of open_clip's ``create_model_and_transforms``).

Training, checkpoint loading and the published-head path all build through it, so the rule
for the backbone's input size exists once (:func:`backbone_input_size`).
"""

from __future__ import annotations

from rfd_common.errors import UserError
from UniversalFakeDetect.data.transforms import TransformConfig
from UniversalFakeDetect.models.detector import Detector
from UniversalFakeDetect.models.registry import ArchSpec, build_backbone, resolve_arch

# Detector.weights of a backbone whose weights come from a file (a checkpoint), not a named set
LOADED_WEIGHTS = "checkpoint"


def fixed_input(spec: ArchSpec) -> bool:
    """Whether ``spec``'s network takes one input size only (a position embedding per patch,
    or CLIP's attention pool over a fixed grid)."""
    return spec.source == "open_clip" or spec.model_name.startswith("vit")


def backbone_input_size(spec: ArchSpec, weights: str, crop_size: int) -> int | None:
    """The input size to build ``spec``'s backbone for (None: its native size).

    Random weights are drawn for the crop size, so every arch accepts small crops (the demo,
    the tests). Pretrained and loaded weights fix the size of a fixed-input network: a crop of
    another size is refused here, with a message, instead of failing in the first forward pass.
    """
    if weights == "none":
        return crop_size
    if fixed_input(spec) and crop_size != spec.native_size:
        raise UserError(
            f"--cropSize {crop_size}: {spec.name} with {weights} weights takes "
            f"{spec.native_size} px crops only (its position embedding has a fixed size); pass "
            f"--cropSize {spec.native_size} and a --loadSize of at least {spec.native_size}"
        )
    return None


def create_detector(
    arch: str,
    weights: str = "pretrained",
    crop_size: int = 224,
    load_size: int | None = None,
    dropout: float = 0.5,
    fix_backbone: bool = False,
) -> tuple[Detector, TransformConfig]:
    """The detector of ``arch`` (backbone with ``weights`` -> dropout -> linear head) and its
    test-time preprocessing (``load_size`` defaults to 8/7 of the crop, UniversalFakeDetect's
    256 for 224). ``weights``: ``pretrained``, ``none`` (random, from torch's current seed) or
    ``checkpoint`` (random now, overwritten by the caller from a file)."""
    spec = resolve_arch(arch)
    build = "none" if weights == LOADED_WEIGHTS else weights
    size = backbone_input_size(spec, weights, crop_size)
    backbone = build_backbone(spec.name, weights=build, image_size=size)
    detector = Detector(backbone, dropout=dropout, fix_backbone=fix_backbone)
    detector.weights = weights
    load = load_size if load_size is not None else crop_size * 8 // 7
    return detector, TransformConfig(load_size=load, crop_size=crop_size, flip=False)
