"""Active-learning training: the detector's trainer as the learner of ``active_learning``'s loop.

The pool is the train split minus the held-out part; the held-out part validates every round
(early stopping), and the final detector is tested on every source of the val split, as in
normal training. With a frozen backbone everything runs on cached features.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from active_learning.compare import run as run_loop
from active_learning.config import ALConfig
from active_learning.loop import LoopResult
from UniversalFakeDetect.checkpoint import save_checkpoint
from UniversalFakeDetect.engine.trainer import DetectorTrainer
from UniversalFakeDetect.evaluation.metrics import best_threshold
from UniversalFakeDetect.pipeline import evaluate_and_report, report_unreadable

# The embedded demo's active-learning defaults: BW-LMS-T's shape (balanced queries, weighted
# loss, loss-weighted mean std, T = 10, early stopping on AP) scaled to 2,160 pool images.
DEMO_ACTIVE_LEARNING: dict[str, Any] = {
    "acq_func": "loss_weighted_mean_std",
    "balance_acquisition": True,
    "use_weighted_loss": True,
    "weighted_loss_decay": 0.75,
    "num_samples_per_class": 100,
    "query": 150,
    "al_iter": 8,
    "al_niter_warmup": 10,
    "niter": 4,
    "dropout_iter": 10,
    "subsample_size": 0,
    "al_earlystop_metric": "ap",
    "earlystop_epoch": 3,
}


def apply_demo_active_learning(args: argparse.Namespace, explicit: set[str]) -> list[str]:
    """Fill unset active-learning options with the demo's; returns what was set."""
    applied = []
    for key, value in DEMO_ACTIVE_LEARNING.items():
        if key not in explicit and getattr(args, key, None) is None:
            setattr(args, key, value)
            applied.append(f"--{key} {value}")
    return applied


def run(
    args: argparse.Namespace,
    config: ALConfig,
    trainer: DetectorTrainer,
    sources: dict[str, Any],
    header: dict[str, Any],
) -> int:
    """Run the loop (or each strategy of ``--acq_func 0``), then test and report.

    ``sources``: ``train``, ``holdout`` and ``test`` batch sources, ``train_rows``, ``test_rows``.
    """
    train_rows, test_rows = sources["train_rows"], sources["test_rows"]
    labels = np.array([r.label for r in train_rows])
    folder = Path(args.result_folder) / args.name
    checkpoint_dir = Path(args.checkpoints_dir) / args.name
    if config.simulation_only:
        print(
            "simulation: "
            + "; ".join(config.true_label_uses)
            + " (pass --label_free to use predicted labels)",
            file=sys.stderr,
        )

    def on_finish(result: LoopResult, learner: DetectorTrainer) -> None:
        strategy_folder = result.state_path.parent if result.state_path else folder
        # the decision threshold is tuned on the held-out images, as for normal training
        holdout = sources["holdout"]
        holdout_probs = learner.predict(holdout)
        finite = np.isfinite(holdout_probs)
        threshold = best_threshold(holdout.labels[finite], holdout_probs[finite])
        path = save_checkpoint(
            learner.detector,
            checkpoint_dir / f"{result.strategy}.safetensors",
            threshold=threshold,
            **header,
        )
        info = {
            "name": args.name,
            "strategy": result.strategy,
            "arch": args.arch,
            "weights": args.weights,
            "fix_backbone": args.fix_backbone,
            "checkpoint": str(path),
            "active_learning": config.to_dict(),
            "simulation_only": config.simulation_only,
            "true_label_uses": config.true_label_uses,
            "labelled_images": len(result.labelled),
            "pool_images": len(train_rows),
        }
        summary = evaluate_and_report(
            learner.detector,
            sources["test"],
            test_rows,
            strategy_folder,
            info,
            tuned_threshold=threshold,
            training_sources={r.source for r in train_rows},
        ).summary
        seen = summary.get("mean_ap_seen")
        if seen is not None:
            print(f"[{result.strategy}] mean AP over generators seen in training: {100 * seen:.2f}")
        print(f"[{result.strategy}] results written to {strategy_folder}")

    run_loop(trainer, labels, config, folder, on_finish=on_finish, resume=not args.restart)
    report_unreadable([("pool", sources["train"]), ("test", sources["test"])])
    print(f"learning curve and per-iteration history: {folder}")
    return 0
