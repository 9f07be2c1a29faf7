"""Normal training: one training round (:mod:`rfd_common.training_round`) over every train
item, with checkpoints, TensorBoard scalars and a resume state written after every epoch.

The round's rule is the original's: validate after every epoch on ``earlystop_metric`` (acc by
default), divide the learning rate by 10 after ``earlystop_epoch`` epochs without a gain, stop
below ``min_lr``. The run ends in its best epoch's weights.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from rfd_common.errors import UserError
from rfd_common.files import atomic_path
from rfd_common.training_round import EpochReport, RoundConfig, RoundState, train_round
from UniversalFakeDetect.engine.trainer import DetectorTrainer

RESUME_NAME = "resume_state.pt"
RESUME_FORMAT = 2  # 1: before the shared training round (its files are not resumed)
BEST_NAME = "model_best.safetensors"

FitState = RoundState  # what fit returns: epoch, history, best_epoch, best_score, stopped


@dataclass
class FitConfig:
    niter: int
    seed: int = 0
    earlystop_epoch: int = 5
    earlystop_metric: str = "acc"
    min_lr: float = 1e-6
    save_epoch_freq: int = 0  # 0: only best and last

    def round_config(self) -> RoundConfig:
        return RoundConfig(
            epochs=self.niter,
            patience=self.earlystop_epoch,
            metric=self.earlystop_metric,
            min_lr=self.min_lr,
        )


def _save_resume(path: Path, trainer: DetectorTrainer, state: RoundState, run_key: str) -> None:
    payload = {
        "format": RESUME_FORMAT,
        "trainer": trainer.state_dict(),
        "round": state.to_dict(),
        "run_key": run_key,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _load_resume(path: Path, trainer: DetectorTrainer, run_key: str) -> RoundState:
    """The saved round, after loading the trainer's state; UserError if it cannot be resumed."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if saved.get("run_key", "") != run_key:
        changed = _changed_settings(saved.get("run_key", ""), run_key)
        raise UserError(
            f"{path}: left by a run with other settings{changed}; pass --restart to "
            "start over, or choose another --name"
        )
    if saved.get("format") != RESUME_FORMAT:
        raise UserError(
            f"{path}: left by an earlier version of the training code, whose early stopping "
            "differs; pass --restart to start over, or choose another --name"
        )
    trainer.load_state_dict(saved["trainer"])
    return RoundState.from_dict(saved["round"])


def fit(
    trainer: DetectorTrainer,
    config: FitConfig,
    checkpoint_dir: Path,
    save_checkpoint: Callable[[Path], None],
    log_scalars: Callable[[dict[str, float], int], None] | None = None,
    resume: bool = True,
    run_key: str = "",
    writes: bool = True,
) -> RoundState:
    """Train up to ``config.niter`` epochs; ``save_checkpoint(path)`` writes the current model.

    Writes ``model_best.safetensors`` at every new best epoch, ``model_epoch_N.safetensors``
    every ``save_epoch_freq`` epochs and a resume state after every epoch; a rerun with
    ``resume`` continues after the last finished epoch. ``run_key`` names what must not change
    between a run and its resumption (arch, data, sizes...); a different key refuses to resume.
    The trainer is left in the best epoch's weights. ``writes`` False (the ranks but 0 under
    torchrun): nothing is written or printed; every rank resumes from the same state file.
    """
    if writes:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
    resume_path = checkpoint_dir / RESUME_NAME
    state = None
    if resume and resume_path.is_file():
        state = _load_resume(resume_path, trainer, run_key)
        if writes:
            print(f"resuming {checkpoint_dir.name} after epoch {state.epoch}", file=sys.stderr)

    def after_epoch(state: RoundState, report: EpochReport) -> None:
        if not writes:
            return
        epoch = report.record["epoch"]
        if report.best:
            save_checkpoint(checkpoint_dir / BEST_NAME)
        if log_scalars is not None:
            log_scalars(report.record, epoch)
        print(_epoch_line(report, trainer.lr, config.earlystop_epoch))
        if config.save_epoch_freq and epoch % config.save_epoch_freq == 0:
            save_checkpoint(checkpoint_dir / f"model_epoch_{epoch}.safetensors")
        _save_resume(resume_path, trainer, state, run_key)

    result = train_round(
        trainer,
        config.round_config(),
        epoch_seed=lambda _epoch: config.seed,  # the trainer varies the order by its epoch
        state=state,
        on_epoch=after_epoch,
    )
    return result.state


def _epoch_line(report: EpochReport, lr: float, patience: int) -> str:
    """``epoch 3: loss 0.4120  val acc 81.25  val AP 90.10  (best)``-style progress line."""
    record = report.record
    note = "  (best)" if report.best else ""
    if report.dropped:
        note += f"  no gain for {patience} epochs: lr -> {lr:g}"
        note += ", below the floor: stop" if report.stopped else ""
    scores = ""
    if "val_acc" in record:
        scores = f"  val acc {100 * record['val_acc']:.2f}  val AP {100 * record['val_ap']:.2f}"
    return f"epoch {record['epoch']}: loss {record['loss']:.4f}{scores}{note}"


NOT_FLAGS = {  # parts of the run key that no flag sets
    "world_size": "the number of torchrun processes",
    "definition": "the network's definition",
}


def _changed_settings(saved_key: str, run_key: str) -> str:
    """`` (--lr 0.001 then, 0.01 now)``-style text naming what differs between two JSON run
    keys; empty when they cannot be compared key by key."""
    try:
        before, now = json.loads(saved_key), json.loads(run_key)
    except json.JSONDecodeError:
        return ""
    if not isinstance(before, dict) or not isinstance(now, dict):
        return ""
    changed = [
        f"{NOT_FLAGS.get(k, '--' + k)} {before.get(k, 'unset')} then, {now.get(k, 'unset')} now"
        for k in sorted(set(before) | set(now))
        if before.get(k) != now.get(k)
    ]
    return f" ({'; '.join(changed)})" if changed else ""
