"""Resumable LoRA checkpoints (``checkpoint-N`` folders): saving one, keeping the newest few,
finding the latest, and checking and restoring one when a run resumes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from LLaVA_Experiments.adapters import save_adapter
from LLaVA_Experiments.recipe import TrainConfig
from rfd_common.errors import UserError
from rfd_common.files import atomic_write_json
from rfd_common.fingerprints import must_match_on_resume

STATE_NAME = "trainer_state.json"
RNG_NAME = "rng_state.pt"


def is_checkpoint(folder: Path) -> bool:
    """A checkpoint counts once its trainer state (written last) is there."""
    return (Path(folder) / STATE_NAME).is_file()


def _complete(output_dir: Path) -> list[Path]:
    """The complete checkpoints in ``output_dir``, oldest first."""
    found = [p for p in Path(output_dir).glob("checkpoint-*") if is_checkpoint(p)]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The newest complete checkpoint in ``output_dir``, or None."""
    found = _complete(output_dir)
    return found[-1] if found else None


def save_checkpoint(
    model: Any, folder: Path, optimizer: Any, scheduler: Any, scaler: Any, state: dict[str, Any]
) -> None:
    """A resumable checkpoint; it counts only once its trainer state (written last) is there."""
    (folder / STATE_NAME).unlink(missing_ok=True)
    save_adapter(model, folder)
    torch.save(optimizer.state_dict(), folder / "optimizer.pt")
    torch.save(scheduler.state_dict(), folder / "scheduler.pt")
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    if scaler.is_enabled():
        rng["scaler"] = scaler.state_dict()
    torch.save(rng, folder / RNG_NAME)
    atomic_write_json(folder / STATE_NAME, state)


def prune_checkpoints(output_dir: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` complete checkpoints (``keep`` 0: keep all)."""
    if keep <= 0:
        return
    for old in _complete(output_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def read_state(folder: Path) -> dict[str, Any]:
    """The trainer state of the checkpoint in ``folder``."""
    return json.loads((Path(folder) / STATE_NAME).read_text())


def check_resume_state(
    state: dict[str, Any], config: TrainConfig, load_in_4bit: bool, resume_from: Path
) -> None:
    """A resumed run must use the checkpoint's settings and the same 4-bit choice."""
    must_match = must_match_on_resume(config)  # the rest may change, e.g. save_steps
    missing = [k for k in (*must_match, "load_in_4bit") if k not in state]
    if missing:
        raise UserError(
            f"--resume {resume_from}: written by an older version of finetune_lora (no "
            f"{', '.join(missing)}); start over with --overwrite"
        )
    changed = [k for k, value in must_match.items() if state[k] != value]
    was = [f"--{k} {state[k]}" for k in changed]
    if bool(state["load_in_4bit"]) != load_in_4bit:
        was.append("--load_in_4bit" if state["load_in_4bit"] else "no --load_in_4bit")
    if was:
        raise UserError(
            f"--resume {resume_from}: that run used {', '.join(was)}; resume with the same "
            "settings or start over with --overwrite"
        )


def restore_checkpoint(
    folder: Path,
    optimizer: Any,
    scheduler: Any,
    scaler: Any,
    config: TrainConfig,
    load_in_4bit: bool,
) -> tuple[int, list[dict[str, Any]]]:
    """Load the optimizer, scheduler, RNG and scaler states saved in ``folder``; returns the
    step reached and the steps skipped so far. Other settings are a :class:`UserError`."""
    folder = Path(folder)
    state = read_state(folder)
    check_resume_state(state, config, load_in_4bit, folder)
    optimizer.load_state_dict(torch.load(folder / "optimizer.pt"))
    scheduler.load_state_dict(torch.load(folder / "scheduler.pt"))
    rng_file = folder / RNG_NAME
    if rng_file.is_file():  # LoRA dropout continues with the masks it would have drawn
        rng = torch.load(rng_file, weights_only=False)
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        if "scaler" in rng:
            scaler.load_state_dict(rng["scaler"])
    return int(state["step"]), list(state.get("skipped", []))
