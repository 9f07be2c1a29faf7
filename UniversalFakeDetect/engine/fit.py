"""Normal training: epochs with validation, early stopping with LR drop, checkpoints, resume.

Early stopping follows the original: when the validation metric has not improved by ``delta``
for ``patience`` epochs, divide the learning rate by 10 and continue; stop once it falls below
``min_lr``. The best epoch's weights are restored at the end.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from rfd_common.errors import UserError
from rfd_common.files import atomic_path
from UniversalFakeDetect.engine.trainer import DetectorTrainer

RESUME_NAME = "resume_state.pt"


@dataclass
class EarlyStopping:
    """Patience counter on a metric that should grow."""

    patience: int
    delta: float = 0.001
    best: float = float("-inf")
    bad_epochs: int = 0

    def step(self, score: float) -> str:
        """``improved``, ``wait`` or ``trigger`` (patience used up; the counter restarts)."""
        if score > self.best + self.delta:
            self.best, self.bad_epochs = score, 0
            return "improved"
        self.bad_epochs += 1
        if self.bad_epochs >= self.patience:
            self.bad_epochs = 0
            return "trigger"
        return "wait"


@dataclass
class FitConfig:
    niter: int
    seed: int = 0
    earlystop_epoch: int = 5
    earlystop_metric: str = "ap"
    min_lr: float = 1e-6
    save_epoch_freq: int = 0  # 0: only best and last


@dataclass
class FitState:
    """Everything needed to resume after the last finished epoch."""

    epoch: int = 0
    best_score: float = float("-inf")
    best_epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    early_stopping: dict[str, Any] = field(default_factory=dict)
    stopped: bool = False


def _save_resume(
    path: Path, trainer: DetectorTrainer, state: FitState, best: dict, run_key: str
) -> None:
    payload = {
        "trainer": trainer.state_dict(),
        "fit": asdict(state),
        "best_model": best,
        "run_key": run_key,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def fit(
    trainer: DetectorTrainer,
    config: FitConfig,
    checkpoint_dir: Path,
    save_checkpoint: Callable[[Path], None],
    log_scalars: Callable[[dict[str, float], int], None] | None = None,
    resume: bool = True,
    run_key: str = "",
) -> FitState:
    """Train up to ``config.niter`` epochs; ``save_checkpoint(path)`` writes the current model.

    Writes ``model_best.safetensors`` at every improvement, ``model_epoch_N.safetensors`` every
    ``save_epoch_freq`` epochs and a resume state after every epoch; a rerun with ``resume``
    continues after the last finished epoch. ``run_key`` names what must not change between a
    run and its resumption (arch, data, sizes...); a different key refuses to resume.
    """
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    resume_path = checkpoint_dir / RESUME_NAME
    state = FitState()
    early = EarlyStopping(patience=config.earlystop_epoch)
    best_model = trainer.model_state()
    if resume and resume_path.is_file():
        saved = torch.load(resume_path, map_location="cpu", weights_only=True)
        if saved.get("run_key", "") != run_key:
            changed = _changed_settings(saved.get("run_key", ""), run_key)
            raise UserError(
                f"{resume_path}: left by a run with other settings{changed}; pass --restart to "
                "start over, or choose another --name"
            )
        trainer.load_state_dict(saved["trainer"])
        state = FitState(**saved["fit"])
        early = EarlyStopping(**state.early_stopping)
        best_model = saved["best_model"]
        print(f"resuming {checkpoint_dir.name} after epoch {state.epoch}", file=sys.stderr)
    while state.epoch < config.niter and not state.stopped:
        start = time.perf_counter()
        loss = trainer.train_epoch(seed=config.seed)
        metrics = trainer.validate()
        state.epoch += 1
        score = metrics[config.earlystop_metric]
        record = {
            "epoch": state.epoch,
            "loss": loss,
            "val_acc": metrics["acc"],
            "val_ap": metrics["ap"],
            "lr": trainer.lr,
            "seconds": round(time.perf_counter() - start, 2),
        }
        state.history.append(record)
        if log_scalars is not None:
            log_scalars(record, state.epoch)
        decision = early.step(score)
        note = ""
        if score > state.best_score:
            state.best_score, state.best_epoch = score, state.epoch
            best_model = trainer.model_state()
            save_checkpoint(checkpoint_dir / "model_best.safetensors")
            note = "  (best)"
        if decision == "trigger":
            trainer.lr = trainer.lr / 10
            note += f"  no gain for {config.earlystop_epoch} epochs: lr -> {trainer.lr:g}"
            if trainer.lr < config.min_lr:
                state.stopped = True
                note += ", below the floor: stop"
        print(
            f"epoch {state.epoch}: loss {loss:.4f}  val acc {100 * metrics['acc']:.2f}  "
            f"val AP {100 * metrics['ap']:.2f}{note}"
        )
        if config.save_epoch_freq and state.epoch % config.save_epoch_freq == 0:
            save_checkpoint(checkpoint_dir / f"model_epoch_{state.epoch}.safetensors")
        state.early_stopping = asdict(early)
        _save_resume(resume_path, trainer, state, best_model, run_key)
    trainer.load_model_state(best_model)
    return state


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
        f"--{k} {before.get(k, 'unset')} then, {now.get(k, 'unset')} now"
        for k in sorted(set(before) | set(now))
        if before.get(k) != now.get(k)
    ]
    return f" ({'; '.join(changed)})" if changed else ""
