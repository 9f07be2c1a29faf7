"""LoRA adapters: where LoRA goes, wrapping a base model with a fresh one, saving one with the
base model's fingerprint, and checking and loading a saved one."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from LLaVA_Experiments.recipe import TrainConfig
from rfd_common.errors import UserError
from rfd_common.files import atomic_write_json

LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
PROJECTOR = "multi_modal_projector"
TRAINABLE_MODULES = [PROJECTOR]
CONFIG_NAME = "adapter_config.json"
FINGERPRINT_NAME = "llava_base_model.json"


@contextlib.contextmanager
def quiet_peft_warnings() -> Iterator[None]:
    """Hide peft's use of transformers' deprecated ``is_gradient_checkpointing`` and
    ``gradient_checkpointing_enable`` (not ours)."""
    with warnings.catch_warnings():
        for name in ("is_gradient_checkpointing", "gradient_checkpointing_enable"):
            warnings.filterwarnings("ignore", message=f".*{name}", category=FutureWarning)
        yield


def add_lora(model: Any, config: TrainConfig) -> Any:
    """Wrap ``model`` with a fresh LoRA adapter; vision tower frozen, projector trainable."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=LORA_TARGETS,
        modules_to_save=TRAINABLE_MODULES,
        bias="none",
        task_type="CAUSAL_LM",
    )
    with quiet_peft_warnings():
        return get_peft_model(model, lora)


def fingerprint(model: Any) -> dict[str, Any]:
    """What identifies a base model for an adapter: name and shapes of its parts."""
    config = model.config
    text, vision = config.text_config, config.vision_config
    return {
        "name_or_path": str(getattr(config, "_name_or_path", "")),
        "text_model_type": text.model_type,
        "text_hidden_size": text.hidden_size,
        "text_layers": text.num_hidden_layers,
        "vocab_size": text.vocab_size,
        "vision_hidden_size": vision.hidden_size,
        "vision_image_size": vision.image_size,
        "vision_patch_size": vision.patch_size,
    }


def save_adapter(model: Any, folder: Path) -> None:
    """Save the adapter and the base model's fingerprint; ``adapter_config.json`` lands last.

    Files are written to a temporary folder and moved in, so a kill never leaves a folder whose
    config points at missing or partial weights.
    """
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".saving-", dir=folder))
    try:
        model.save_pretrained(str(staging))
        atomic_write_json(staging / FINGERPRINT_NAME, fingerprint(model.get_base_model()))
        names = sorted(p.name for p in staging.iterdir() if p.name != CONFIG_NAME)
        for name in [*names, CONFIG_NAME]:
            os.replace(staging / name, folder / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def check_adapter_folder(adapter: str | Path) -> Path:
    """An adapter folder must hold ``adapter_config.json`` (checked before loading a model)."""
    folder = Path(adapter).expanduser()
    if not (folder / CONFIG_NAME).is_file():
        raise UserError(f"--adapter {adapter}: no {CONFIG_NAME} there")
    return folder


def _check_base_model(model: Any, folder: Path, adapter: str | Path) -> None:
    """The base model must have the shapes the adapter was trained on (when it recorded them)."""
    recorded_path = folder / FINGERPRINT_NAME
    if not recorded_path.is_file():
        return
    recorded = json.loads(recorded_path.read_text())
    current = fingerprint(model)
    keys = [k for k in current if k != "name_or_path" and recorded.get(k) != current[k]]
    if keys:
        diffs = ", ".join(f"{k} {recorded.get(k)} vs {current[k]}" for k in keys)
        raise UserError(
            f"--adapter {adapter}: trained on another base model "
            f"({recorded.get('name_or_path')}); differs in {diffs}"
        )


def load_adapter(model: Any, adapter: str | Path, trainable: bool = False) -> Any:
    """Wrap ``model`` with the LoRA adapter in ``adapter``; a mismatched base is a UserError."""
    from peft import PeftModel

    folder = check_adapter_folder(adapter)
    _check_base_model(model, folder, adapter)
    try:
        with quiet_peft_warnings():
            return PeftModel.from_pretrained(model, str(folder), is_trainable=trainable)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise UserError(
            f"--adapter {adapter}: does not fit this base model ({str(exc)[:300]})"
        ) from exc
