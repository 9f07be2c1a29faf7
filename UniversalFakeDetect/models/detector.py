"""The detector: backbone -> dropout -> linear(width, 1); sigmoid of the logit = P(fake)."""

from __future__ import annotations

import hashlib

import torch
from torch import nn

from UniversalFakeDetect.models.registry import Backbone, normalisation


class Detector(nn.Module):
    """Takes RGB images in [0, 1] of shape [B, 3, H, W]; returns one logit per image.

    The backbone's input normalisation lives inside the model, so a checkpoint carries it.
    With ``fix_backbone`` the backbone is frozen and kept in eval mode.
    """

    def __init__(self, backbone: Backbone, dropout: float = 0.5, fix_backbone: bool = False):
        super().__init__()
        self.backbone = backbone.module
        self.arch = backbone.spec.name
        self.definition = backbone.spec.definition
        # "pretrained", "none" (random initialisation) or "checkpoint" (loaded from a file)
        self.weights = backbone.weights
        self.width = backbone.width
        self.fix_backbone = fix_backbone
        mean, std = normalisation(backbone.spec)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        self.dropout = nn.Dropout(dropout)
        # training-time dropout masks [B, width] for the next batch, one row per image, set by
        # the trainer (engine.trainer.batch_dropout_masks); None: nn.Dropout
        self.item_masks: torch.Tensor | None = None
        self.fc = nn.Linear(self.width, 1)
        if fix_backbone:
            for parameter in self.backbone.parameters():
                parameter.requires_grad_(False)

    def train(self, mode: bool = True) -> Detector:
        super().train(mode)
        if self.fix_backbone:
            self.backbone.eval()
        return self

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] as the backbone takes them (its mean and std)."""
        return (images - self.mean) / self.std

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Backbone features [B, width] of images in [0, 1]."""
        x = self.normalise(images)
        if self.fix_backbone:
            with torch.no_grad():
                return self.backbone(x).float()
        return self.backbone(x).float()

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """Logits [B] from features (dropout active in train mode: :attr:`item_masks` when
        set, else ``nn.Dropout``)."""
        if self.training and self.item_masks is not None:
            return self.fc(features * self.item_masks.to(features.dtype)).squeeze(1)
        return self.fc(self.dropout(features)).squeeze(1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def backbone_digest(self) -> str:
        """A hash of the backbone's weights and buffers, names and shapes included: what
        features computed by weights other than a named pretrained set are keyed by."""
        digest = hashlib.sha256()
        for name, tensor in sorted(self.backbone.state_dict().items()):
            data = tensor.detach().cpu().contiguous()
            digest.update(f"{name}|{data.dtype}|{tuple(data.shape)}\n".encode())
            digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()[:20]
