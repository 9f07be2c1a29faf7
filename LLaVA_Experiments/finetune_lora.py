"""LoRA fine-tuning of LLaVA-NeXT on explanation conversations (LLaVA JSON format).

peft LoRA on the language model's attention and MLP projections (not the vision tower), the
multimodal projector fully trainable with its own learning rate, optional 4-bit base (QLoRA),
non-reentrant gradient checkpointing. Only assistant tokens count in the loss. Conversations
that ``--max_length`` would cut are found before training (refused, or dropped and listed with
``--drop_too_long``); a step without a finite loss on a labelled token is skipped, never
applied. The adapter (with its config and the base model's fingerprint) is saved to
``--output_dir``; ``--save_steps`` writes resumable checkpoints.

    python -m LLaVA_Experiments.finetune_lora --data_root DATA \
        --data LLaVA_Experiments/data/train_explanations.json --output_dir checkpoints/llava_lora
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from LLaVA_Experiments.model import (
    DEFAULT_MODEL,
    IGNORE_INDEX,
    add_dtype_option,
    conversation_length,
    encode_conversation,
    image_size,
    image_token_count,
    load_adapter,
    load_image,
    load_model,
    load_processor,
    model_device,
    model_dtype,
    quiet_peft_warnings,
    read_conversations,
    to_model,
    validate_record,
    write_fingerprint,
)
from rfd_common.errors import UserError, exit_on_user_error
from rfd_common.files import atomic_write_json, ensure_writable_dir
from UniversalFakeDetect.options import default_checkpoints_dir

LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
PROJECTOR = "multi_modal_projector"
TRAINABLE_MODULES = [PROJECTOR]
# The 16-bit and the 4-bit paths checkpoint activations the same way (non-reentrant).
CHECKPOINT_KWARGS = {"use_reentrant": False}
STATE_NAME = "trainer_state.json"
RNG_NAME = "rng_state.pt"
# Settings a resumed run must share with the checkpoint (the rest may change, e.g. save_steps).
RESUME_MUST_MATCH = (
    "lora_r", "lora_alpha", "lora_dropout", "lr", "mm_projector_lr", "epochs", "grad_accum",
    "warmup_ratio", "weight_decay", "max_length", "seed", "max_steps",
)  # fmt: skip


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
    gradient_checkpointing: bool = True
    save_steps: int = 0
    save_total_limit: int = 2
    seed: int = 0
    max_steps: int | None = None


def enable_checkpointing(model: Any) -> None:
    """Activation (gradient) checkpointing, non-reentrant, by whichever name transformers uses."""
    kwargs = dict(CHECKPOINT_KWARGS)
    if hasattr(model, "activation_checkpointing_enable"):  # transformers 5.x
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def prepare_for_training(model: Any, config: TrainConfig, load_in_4bit: bool = False) -> Any:
    """Set the base model up for LoRA training; fresh and resumed runs both go through here.

    4-bit: peft's ``prepare_model_for_kbit_training`` (freezes the base, casts its 16-bit
    weights to float32) with the same non-reentrant checkpointing as the 16-bit path.
    """
    if load_in_4bit:
        from peft import prepare_model_for_kbit_training

        with quiet_peft_warnings():
            model = prepare_model_for_kbit_training(
                model,
                use_gradient_checkpointing=config.gradient_checkpointing,
                gradient_checkpointing_kwargs=dict(CHECKPOINT_KWARGS),
            )
    if config.gradient_checkpointing:
        enable_checkpointing(model)
    return model


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


def build_optimizer(model: Any, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW with two parameter groups: ``lora`` (``--lr``) and ``projector``
    (``--mm_projector_lr``, the projector's trainable copy), as LLaVA's LoRA scripts do."""
    lora, projector = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (projector if PROJECTOR in name else lora).append(param)
    groups = [
        {"params": lora, "lr": config.lr, "name": "lora"},
        {"params": projector, "lr": config.mm_projector_lr, "name": "projector"},
    ]
    return torch.optim.AdamW(
        [g for g in groups if g["params"]], lr=config.lr, weight_decay=config.weight_decay
    )


def load_dataset(data: Path, root: Path) -> list[dict[str, Any]]:
    """Read and check every conversation before training starts."""
    records = read_conversations(data)
    if not records:
        raise UserError(f"{data}: no conversations")
    for record in records:
        validate_record(record, root)
    return records


def check_lengths(
    records: Sequence[dict[str, Any]],
    root: Path,
    processor: Any,
    max_length: int,
    drop: bool = False,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Find the conversations whose tokens (image included) exceed ``max_length``.

    Their answers would be cut (possibly to nothing, a step without a labelled token), so they
    are refused with a :class:`UserError` listing them, or with ``drop`` left out. Returns the
    records kept and ``[{"id", "tokens"}]`` of those dropped. Counted from the image sizes and
    the tokenizer, without processing pixels.
    """
    per_size: dict[tuple[int, int], int] = {}
    kept: list[dict[str, Any]] = []
    too_long: list[dict[str, Any]] = []
    for record in records:
        size = image_size(root, str(record["image"]))
        if size not in per_size:
            per_size[size] = image_token_count(processor, *size)
        tokens = conversation_length(processor, record, size, per_size[size])
        if tokens > max_length:
            too_long.append({"id": str(record.get("id", "?")), "tokens": tokens})
        else:
            kept.append(record)
    if too_long and (not drop or not kept):
        listed = ", ".join(f"'{t['id']}' ({t['tokens']} tokens)" for t in too_long[:10])
        more = f" and {len(too_long) - 10} more" if len(too_long) > 10 else ""
        longest = max(t["tokens"] for t in too_long)
        advice = "" if drop else ", or pass --drop_too_long to train without them"
        raise UserError(
            f"{len(too_long)} of {len(records)} conversations need more than --max_length "
            f"{max_length} tokens, so their answers would be cut: {listed}{more}. Pass "
            f"--max_length {longest} or more (Vicuna's context is 4096){advice}"
        )
    return kept, too_long


def latest_checkpoint(output_dir: Path) -> Path | None:
    found = [p for p in Path(output_dir).glob("checkpoint-*") if (p / STATE_NAME).is_file()]
    return max(found, key=lambda p: int(p.name.split("-")[1]), default=None)


def _order(count: int, seed: int, epoch: int) -> list[int]:
    order = list(range(count))
    random.Random(seed * 1000003 + epoch).shuffle(order)
    return order


def _save_adapter(model: Any, folder: Path) -> None:
    """Save the adapter and the base model's fingerprint; ``adapter_config.json`` lands last.

    Files are written to a temporary folder and moved in, so a kill never leaves a folder whose
    config points at missing or partial weights.
    """
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".saving-", dir=folder))
    try:
        model.save_pretrained(str(staging))
        write_fingerprint(model.get_base_model(), staging)
        names = sorted(p.name for p in staging.iterdir() if p.name != "adapter_config.json")
        for name in [*names, "adapter_config.json"]:
            os.replace(staging / name, folder / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _save_checkpoint(
    model: Any, folder: Path, optimizer: Any, scheduler: Any, scaler: Any, state: dict[str, Any]
) -> None:
    """A resumable checkpoint; it counts only once its trainer state (written last) is there."""
    (folder / STATE_NAME).unlink(missing_ok=True)
    _save_adapter(model, folder)
    torch.save(optimizer.state_dict(), folder / "optimizer.pt")
    torch.save(scheduler.state_dict(), folder / "scheduler.pt")
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    if scaler.is_enabled():
        rng["scaler"] = scaler.state_dict()
    torch.save(rng, folder / RNG_NAME)
    atomic_write_json(folder / STATE_NAME, state)


def _prune_checkpoints(output_dir: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` complete checkpoints (``keep`` 0: keep all)."""
    if keep <= 0:
        return
    found = [p for p in Path(output_dir).glob("checkpoint-*") if (p / STATE_NAME).is_file()]
    found.sort(key=lambda p: int(p.name.split("-")[1]))
    for old in found[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


StepCallback = Callable[[int, float | None], None]


def _check_resume_state(
    state: dict[str, Any], config: TrainConfig, load_in_4bit: bool, resume_from: Path
) -> None:
    """A resumed run must use the checkpoint's settings and the same 4-bit choice."""
    missing = [k for k in (*RESUME_MUST_MATCH, "load_in_4bit") if k not in state]
    if missing:
        raise UserError(
            f"--resume {resume_from}: written by an older version of finetune_lora (no "
            f"{', '.join(missing)}); start over with --overwrite"
        )
    changed = [k for k in RESUME_MUST_MATCH if state[k] != getattr(config, k)]
    was = [f"--{k} {state[k]}" for k in changed]
    if bool(state["load_in_4bit"]) != load_in_4bit:
        was.append("--load_in_4bit" if state["load_in_4bit"] else "no --load_in_4bit")
    if was:
        raise UserError(
            f"--resume {resume_from}: that run used {', '.join(was)}; resume with the same "
            "settings or start over with --overwrite"
        )


def train(
    model: Any,
    processor: Any,
    records: Sequence[dict[str, Any]],
    root: Path,
    output_dir: Path,
    config: TrainConfig,
    resume_from: Path | None = None,
    load_in_4bit: bool = False,
    progress: bool = False,
    on_step: StepCallback | None = None,
    report: dict[str, Any] | None = None,
) -> tuple[Any, list[float]]:
    """Train LoRA (batch of one conversation, ``grad_accum`` per step); returns model, losses.

    A conversation without a labelled token, or with a loss that is not finite, adds nothing to
    its step; a step where nothing was added, or whose gradient is not finite, is not applied.
    Both are listed under ``skipped`` in ``training_info.json`` (``losses`` has one entry per
    applied step). ``on_step(step, loss or None)`` is called after every step; ``report`` is
    added to ``training_info.json``.
    """
    torch.manual_seed(config.seed)
    compute_dtype = model_dtype(model)  # before prepare_model_for_kbit_training's fp32 casts
    model = prepare_for_training(model, config, load_in_4bit)
    if resume_from is not None:
        model = load_adapter(model, resume_from, trainable=True)
    else:
        model = add_lora(model, config)
    params = [p for p in model.parameters() if p.requires_grad]
    # Mixed precision: trainable weights in float32, the forward pass autocast to the weights'
    # dtype, a gradient scaler for float16 on the GPU.
    low_precision = compute_dtype in (torch.bfloat16, torch.float16)
    for param in params:
        param.data = param.data.float()
    device_type = model_device(model).type
    scaler = torch.amp.GradScaler(
        device_type, enabled=compute_dtype == torch.float16 and device_type == "cuda"
    )
    optimizer = build_optimizer(model, config)
    micro_total = math.ceil(len(records) * config.epochs)
    total_steps = max(1, math.ceil(micro_total / config.grad_accum))
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    warmup = int(total_steps * config.warmup_ratio)

    def schedule(step: int) -> float:  # linear warmup, cosine decay (the LLaVA recipe)
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress_ = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * progress_))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    step = 0
    skipped: list[dict[str, Any]] = []
    if resume_from is not None:
        state = json.loads((Path(resume_from) / STATE_NAME).read_text())
        _check_resume_state(state, config, load_in_4bit, Path(resume_from))
        optimizer.load_state_dict(torch.load(Path(resume_from) / "optimizer.pt"))
        scheduler.load_state_dict(torch.load(Path(resume_from) / "scheduler.pt"))
        step = int(state["step"])
        skipped = list(state.get("skipped", []))
        rng_file = Path(resume_from) / RNG_NAME
        if rng_file.is_file():  # LoRA dropout continues with the masks it would have drawn
            rng = torch.load(rng_file, weights_only=False)
            torch.set_rng_state(rng["torch"])
            if "cuda" in rng and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(rng["cuda"])
            if "scaler" in rng:
                scaler.load_state_dict(rng["scaler"])
    model.train()
    losses: list[float] = []
    micro = step * config.grad_accum
    running = 0.0
    added = 0  # conversations that added to this step's gradient
    bar = tqdm(total=total_steps, initial=step, desc="LoRA", unit="step", disable=not progress)
    while step < total_steps:
        epoch, position = divmod(micro, len(records))
        record = records[_order(len(records), config.seed, epoch)[position]]
        rid = str(record.get("id", "?"))
        image = load_image(root, str(record["image"]), what=f"conversation '{rid}'")
        batch = encode_conversation(processor, image, record, config.max_length)
        micro += 1
        if not bool((batch["labels"] != IGNORE_INDEX).any()):
            skipped.append({"id": rid, "step": step + 1, "why": "no labelled token"})
        else:
            batch = to_model(batch, model)
            with torch.autocast(device_type, dtype=compute_dtype, enabled=low_precision):
                loss = model(**batch).loss
            value = float(loss.detach())
            if math.isfinite(value):
                scaler.scale(loss / config.grad_accum).backward()
                running += value / config.grad_accum
                added += 1
            else:
                skipped.append({"id": rid, "step": step + 1, "why": f"loss {value}"})
            del loss
        if micro % config.grad_accum:
            continue
        applied = False
        if added:
            scaler.unscale_(optimizer)
            norm = float(torch.nn.utils.clip_grad_norm_(params, 1.0))
            if math.isfinite(norm) or scaler.is_enabled():  # the scaler skips inf itself
                scaler.step(optimizer)
                scaler.update()
                applied = True
            else:
                skipped.append({"step": step + 1, "why": f"gradient norm {norm}"})
        optimizer.zero_grad(set_to_none=True)
        with warnings.catch_warnings():  # a first step that was skipped: nothing to warn about
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
            scheduler.step()
        step += 1
        if applied:
            losses.append(running)
        running, added = 0.0, 0
        bar.update(1)
        if applied:
            bar.set_postfix(loss=f"{losses[-1]:.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
        if on_step is not None:
            on_step(step, losses[-1] if applied else None)
        if config.save_steps and step % config.save_steps == 0 and step < total_steps:
            state = {
                "step": step, "total_steps": total_steps, "load_in_4bit": load_in_4bit,
                "skipped": skipped, **asdict(config),
            }  # fmt: skip
            folder = Path(output_dir) / f"checkpoint-{step}"
            _save_checkpoint(model, folder, optimizer, scheduler, scaler, state)
            _prune_checkpoints(output_dir, config.save_total_limit)
    bar.close()
    model.eval()
    _save_adapter(model, Path(output_dir))  # trained weights saved in float32
    for param in params:  # back to the base model's dtype, ready for inference
        param.data = param.data.to(compute_dtype)
    info = {
        "config": asdict(config), "load_in_4bit": load_in_4bit, "steps": step,
        "losses": losses, "conversations": len(records), "skipped": skipped, **(report or {}),
    }  # fmt: skip
    atomic_write_json(Path(output_dir) / "training_info.json", info)
    return model, losses


def build_parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=DEFAULT_MODEL, help="hub id or local folder")
    p.add_argument("--data", required=True, help="LLaVA JSON from make_train_data")
    p.add_argument("--data_root", default=None, help="folder the 'image' paths are relative to")
    p.add_argument(
        "--output_dir", default=str(default_checkpoints_dir() / "llava_lora"),
        help="adapter and checkpoints ($RFD_CHECKPOINTS_DIR or ./checkpoints, then llava_lora)",
    )  # fmt: skip
    p.add_argument("--lora_r", type=int, default=d.lora_r)
    p.add_argument("--lora_alpha", type=int, default=d.lora_alpha)
    p.add_argument("--lora_dropout", type=float, default=d.lora_dropout)
    p.add_argument("--lr", type=float, default=d.lr, help="learning rate of the LoRA weights")
    p.add_argument(
        "--mm_projector_lr", type=float, default=d.mm_projector_lr,
        help="learning rate of the projector (trained in full)",
    )  # fmt: skip
    p.add_argument("--epochs", type=float, default=d.epochs)
    p.add_argument(
        "--grad_accum", type=int, default=d.grad_accum,
        help="conversations per optimizer step (one per forward pass; 8: the original's batch)",
    )  # fmt: skip
    p.add_argument(
        "--max_length", type=int, default=d.max_length,
        help="tokens per conversation, image included; longer ones are refused before training",
    )  # fmt: skip
    p.add_argument(
        "--drop_too_long", action="store_true",
        help="train without the conversations longer than --max_length (listed) instead of "
        "refusing to start",
    )  # fmt: skip
    p.add_argument("--max_steps", type=int, default=None)
    p.add_argument("--save_steps", type=int, default=d.save_steps, help="0: final adapter only")
    p.add_argument(
        "--save_total_limit", type=int, default=d.save_total_limit,
        help="keep only the newest N checkpoints (0: keep all)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--no_gradient_checkpointing", action="store_true")
    p.add_argument("--load_in_4bit", action="store_true")
    p.add_argument(
        "--resume", nargs="?", const="latest", default=None,
        help="resume from the latest checkpoint-N in --output_dir, or from the one given",
    )  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="replace an existing adapter")
    p.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: cuda if any)")
    add_dtype_option(p)
    return p


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> int:
    from UniversalFakeDetect.data.data_root import resolve_data_root

    args = build_parser().parse_args(argv)
    if args.lora_r < 1 or args.grad_accum < 1 or args.epochs <= 0 or args.lr <= 0:
        raise UserError("--lora_r and --grad_accum must be >= 1, --epochs and --lr > 0")
    if args.mm_projector_lr < 0 or args.max_length < 1:
        raise UserError("--mm_projector_lr must be >= 0 and --max_length >= 1")
    root = resolve_data_root(args.data_root)
    records = load_dataset(Path(args.data), root)
    output_dir = Path(args.output_dir)
    resume_from = None
    if args.resume:
        resume_from = (
            latest_checkpoint(output_dir) if args.resume == "latest" else Path(args.resume)
        )
        if resume_from is None or not (resume_from / STATE_NAME).is_file():
            raise UserError(f"--resume: no checkpoint found ({args.resume}, in {output_dir})")
    elif (output_dir / "adapter_config.json").is_file() and not args.overwrite:
        raise UserError(
            f"--output_dir {output_dir}: holds an adapter; pass --overwrite or --resume"
        )
    config = TrainConfig(
        lora_r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
        lr=args.lr, mm_projector_lr=args.mm_projector_lr, epochs=args.epochs,
        grad_accum=args.grad_accum, max_length=args.max_length,
        gradient_checkpointing=not args.no_gradient_checkpointing, save_steps=args.save_steps,
        save_total_limit=args.save_total_limit,
        seed=args.seed, max_steps=args.max_steps,
    )  # fmt: skip
    if resume_from is not None:  # refuse other settings before loading anything
        state = json.loads((resume_from / STATE_NAME).read_text())
        _check_resume_state(state, config, args.load_in_4bit, resume_from)
    # lengths are checked with the processor alone, before minutes of loading the weights
    processor = load_processor(args.model)
    records, dropped = check_lengths(
        records, root, processor, config.max_length, drop=args.drop_too_long
    )
    if dropped:
        print(
            f"--drop_too_long: {len(dropped)} conversations longer than --max_length "
            f"{config.max_length} left out (listed in training_info.json): "
            + ", ".join(f"'{d['id']}' ({d['tokens']} tokens)" for d in dropped[:10])
            + (" ..." if len(dropped) > 10 else ""),
            file=sys.stderr,
        )
    if args.overwrite and output_dir.is_dir() and not args.resume:
        shutil.rmtree(output_dir)
    ensure_writable_dir(output_dir, flag="--output_dir")
    model, processor = load_model(
        args.model, args.device, args.load_in_4bit, args.dtype, processor=processor
    )
    processor.tokenizer.padding_side = "right"
    _, losses = train(
        model, processor, records, root, output_dir, config, resume_from, args.load_in_4bit,
        progress=True, report={"dropped_too_long": dropped},
    )  # fmt: skip
    first = f"{losses[0]:.4f}" if losses else "n/a"
    last = f"{losses[-1]:.4f}" if losses else "n/a"
    info = json.loads((output_dir / "training_info.json").read_text())
    count = len(info["skipped"])
    skipped = f"; {count} skipped, see training_info.json" if count else ""
    print(f"adapter saved to {output_dir} ({info['steps']} steps{skipped}; loss {first} -> {last})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
