"""The one table of presets: bundles of settings named on the command line (``--preset``), each
with its detector part and, for active learning, its active-learning part.

Values are keyed by setting name (a field of the configs in :mod:`UniversalFakeDetect.config`
or of :class:`~active_learning.config.ALConfig`). Layers, lowest first: the configs' defaults,
:data:`TRAINING_DEFAULTS`, the preset's ``detector`` part, its ``active_learning`` part (under
active learning only), then the flags given. The embedded demo dataset implies ``demo``: the
implicit demo is exactly ``--preset demo``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Training defaults that differ from the configs' neutral defaults: UniversalFakeDetect's blur
# and JPEG augmentation, each with probability 0.5.
TRAINING_DEFAULTS: dict[str, Any] = {"blur_prob": 0.5, "jpg_prob": 0.5}


@dataclass(frozen=True)
class Preset:
    """A named bundle: detector settings, active-learning settings (used only under active
    learning, or always when ``implies_active_learning``) and a one-line description."""

    description: str
    detector: dict[str, Any] = field(default_factory=dict)
    active_learning: dict[str, Any] = field(default_factory=dict)
    implies_active_learning: bool = False


# The paper's detector (DESIGN 6): CLIP RN50 frozen, AdamW lr 1e-4, batch 256.
_PAPER_DETECTOR = {"arch": "CLIP:RN50", "fix_backbone": True, "lr": 1e-4, "batch_size": 256}

PRESETS: dict[str, Preset] = {
    "demo": Preset(
        "the embedded demo on 2 CPU cores: a ResNet-18 trained from random initialisation; "
        "active learning in BW-LMS-T's shape, scaled down",
        detector={
            "arch": "Imagenet:resnet18",
            "weights": "none",
            "niter": 12,
            "lr": 1e-3,
            "batch_size": 64,
            "earlystop_epoch": 2,
            "blur_prob": 0.0,
            "jpg_prob": 0.0,
        },
        active_learning={
            "acq_func": "loss_weighted_mean_std",
            "balance_acquisition": True,
            "use_weighted_loss": True,
            "weighted_loss_decay": 0.75,
            "num_samples_per_class": 100,
            "query": 150,
            "al_iter": 8,
            "al_niter_warmup": 10,
            "niter": 3,
            "lr": 5e-4,  # the rounds on 200-1,400 images: 1e-3 let some seeds collapse
            "dropout_iter": 10,
            "subsample_size": 0,
            "al_earlystop_metric": "ap",
            "earlystop_epoch": 3,
        },
    ),
    "table1": Preset(
        "the paper's method comparison (Table 1): init 10K, query 2.5K, 20 iterations",
        detector=_PAPER_DETECTOR,
        active_learning={
            "num_samples_per_class": 5000,
            "query": 2500,
            "al_iter": 20,
            "al_niter_warmup": 30,
            "niter": 30,
            "dropout_iter": 10,
            "weighted_loss_decay": 0.99,
        },
        implies_active_learning=True,
    ),
    "bw_lms_t": Preset(
        "the paper's best (Table 2, BW-LMS-T): balanced queries, weighted loss, loss-weighted "
        "mean std; init 2K, query 500, 20 iterations",
        detector=_PAPER_DETECTOR,
        active_learning={
            "num_samples_per_class": 1000,
            "query": 500,
            "al_iter": 20,
            "al_niter_warmup": 60,
            "niter": 5,
            "dropout_iter": 10,
            "weighted_loss_decay": 0.75,
            "balance_acquisition": True,
            "use_weighted_loss": True,
            "acq_func": "loss_weighted_mean_std",
            "al_earlystop_metric": "ap",
            "earlystop_epoch": 10,
        },
        implies_active_learning=True,
    ),
}


def preset_values(name: str | None, active_learning: bool) -> dict[str, Any]:
    """The settings preset ``name`` fills in (none for None): its detector part, then, under
    active learning (or for a preset that implies it), its active-learning part."""
    if name is None:
        return {}
    preset = PRESETS[name]
    values = dict(preset.detector)
    if active_learning or preset.implies_active_learning:
        values.update(preset.active_learning)
    return values
