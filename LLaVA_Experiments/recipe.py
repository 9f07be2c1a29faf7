"""The LoRA training recipe: :class:`TrainConfig` and its defaults (no torch, so the command
line can show them without loading it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from rfd_common.fingerprints import RESUMABLE


@dataclass
class TrainConfig:
    """The original recipe (LLaVA-1.5/1.6 LoRA scripts): r 128, alpha 256, dropout 0.05, lr 2e-4,
    projector lr 2e-5, warm-up 3% then cosine, 1 epoch, effective batch 8 (one conversation
    per forward pass, 8 accumulated), max_length 2048.

    max_length 2048 fits every conversation on a 256x256 image: 1,176 image tokens (anyres,
    336 px crops, patch 14) + at most ~100 prompt tokens (Vicuna template and question) + at
    most 300 answer tokens (make_train_data's --max_new_tokens) + a few for the final
    ``Answer:`` line and ``</s>``, about 1,580; larger images need up to 2,928 image tokens.
    """

    lora_r: int = 128
    lora_alpha: int = 256
    lora_dropout: float = 0.05
    lr: float = 2e-4
    mm_projector_lr: float = 2e-5
    epochs: float = 1.0
    grad_accum: int = 8
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    max_length: int = 2048
    gradient_checkpointing: bool = field(default=True, metadata=RESUMABLE)
    save_steps: int = field(default=0, metadata=RESUMABLE)
    save_total_limit: int = field(default=2, metadata=RESUMABLE)
    seed: int = 0
    max_steps: int | None = None
