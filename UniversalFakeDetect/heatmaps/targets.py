"""The layer Grad-CAM reads, per ``--arch``: one table, and a clear error for any other arch.

CNNs: the output of the last convolutional stage (ResNets' ``layer4``, whose spatial grid the
pooling then averages; VGG's last ReLU before the final max-pool). ViTs: the input norm of the
last transformer block (``ln_1``): its patch tokens still reach the class token, through that
block's attention, so their gradients are not zero (after the final norm only the class token
is read and every patch token's gradient is zero). Tokens are reshaped to the patch grid with
the class token dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from rfd_common.errors import UserError
from UniversalFakeDetect.models.detector import Detector


@dataclass(frozen=True)
class Target:
    """The layer to read, its dotted name in the backbone, and for transformer tokens the patch
    size (height, width) and whether the layer's output is ``[batch, tokens, width]``."""

    layer: nn.Module
    name: str
    patch: tuple[int, int] | None = None
    batch_first: bool = True

    @property
    def tokens(self) -> bool:
        """Whether the layer outputs transformer tokens (a reshape to the grid is needed)."""
        return self.patch is not None


def _resnet(backbone: nn.Module) -> Target:
    """torchvision's and open_clip's (ModifiedResNet) ResNets: the last stage, ``layer4``."""
    return Target(backbone.layer4, "layer4")


def _vgg(backbone: nn.Module) -> Target:
    """The last ReLU of ``features`` (the last convolution, activated, before the max-pool)."""
    index = max(i for i, m in enumerate(backbone.features) if isinstance(m, nn.ReLU))
    return Target(backbone.features[index], f"features.{index}")


def _torchvision_vit(backbone: nn.Module) -> Target:
    """torchvision's ViT: ``encoder.layers[-1].ln_1`` (batch first; square patches)."""
    blocks = backbone.encoder.layers
    name = f"encoder.layers.{len(blocks) - 1}.ln_1"
    return Target(blocks[-1].ln_1, name, (backbone.patch_size, backbone.patch_size))


def _open_clip_vit(backbone: nn.Module) -> Target:
    """open_clip's VisionTransformer: ``transformer.resblocks[-1].ln_1``."""
    blocks = backbone.transformer.resblocks
    name = f"transformer.resblocks.{len(blocks) - 1}.ln_1"
    first = getattr(backbone.transformer, "batch_first", True)
    return Target(blocks[-1].ln_1, name, tuple(backbone.patch_size), first)


TARGET_LAYERS: dict[str, Callable[[nn.Module], Target]] = {
    "Imagenet:resnet18": _resnet,
    "Imagenet:resnet34": _resnet,
    "Imagenet:resnet50": _resnet,
    "Imagenet:resnet101": _resnet,
    "Imagenet:resnet152": _resnet,
    "Imagenet:vgg11": _vgg,
    "Imagenet:vgg19": _vgg,
    "Imagenet:vit_b_16": _torchvision_vit,
    "CLIP:RN50": _resnet,
    "CLIP:RN101": _resnet,
    "CLIP:ViT-L/14": _open_clip_vit,
}


def find_target(detector: Detector) -> Target:
    """The Grad-CAM target of ``detector``'s backbone; an arch without one is a UserError."""
    locate = TARGET_LAYERS.get(detector.arch)
    if locate is None:
        raise UserError(
            f"--explain: no Grad-CAM target layer is known for --arch {detector.arch}; heat "
            f"maps exist for {', '.join(TARGET_LAYERS)}"
        )
    try:
        return locate(detector.backbone)
    except (AttributeError, IndexError, TypeError, ValueError) as exc:
        raise UserError(
            f"--explain: the backbone of --arch {detector.arch} does not have the layout its "
            f"Grad-CAM target expects ({type(exc).__name__}: {exc})"
        ) from exc
