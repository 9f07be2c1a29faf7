"""The LoRA training loop: setting the model up (checkpointing, 4-bit preparation, LoRA), the
optimizer and schedule of the recipe, and the steps (one conversation per forward pass,
``grad_accum`` per step, steps without a finite loss or gradient skipped, never applied)."""

from __future__ import annotations

import json
import math
import random
import warnings
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm import tqdm

from LLaVA_Experiments.adapters import (
    PROJECTOR,
    add_lora,
    load_adapter,
    quiet_peft_warnings,
    save_adapter,
)
from LLaVA_Experiments.checkpoints import prune_checkpoints, restore_checkpoint, save_checkpoint
from LLaVA_Experiments.encoding import IGNORE_INDEX, encode_conversation
from LLaVA_Experiments.images import load_image
from LLaVA_Experiments.loading import model_device, model_dtype, to_model
from LLaVA_Experiments.recipe import TrainConfig
from rfd_common.files import atomic_write_json
from UniversalFakeDetect.engine.distributed import sum_over_ranks

if TYPE_CHECKING:
    from UniversalFakeDetect.features.shard import Shard

# The 16-bit and the 4-bit paths checkpoint activations the same way (non-reentrant).
CHECKPOINT_KWARGS = {"use_reentrant": False}
StepCallback = Callable[[int, float | None], None]


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


def count_steps(conversations: int, config: TrainConfig) -> int:
    """Optimizer steps of a run over ``conversations`` (``--epochs``, capped by max_steps)."""
    micro_total = math.ceil(conversations * config.epochs)
    total_steps = max(1, math.ceil(micro_total / config.grad_accum))
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    return total_steps


def warmup_cosine(total_steps: int, warmup_ratio: float) -> Callable[[int], float]:
    """The learning-rate factor per step: linear warm-up, then cosine decay (the LLaVA recipe)."""
    warmup = int(total_steps * warmup_ratio)

    def schedule(step: int) -> float:
        """The factor at ``step``."""
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * progress))

    return schedule


def epoch_order(count: int, seed: int, epoch: int) -> list[int]:
    """The seeded order in which epoch ``epoch`` visits ``count`` conversations."""
    order = list(range(count))
    random.Random(seed * 1000003 + epoch).shuffle(order)
    return order


@dataclass
class _Run:
    """What a training run carries from step to step."""

    model: Any
    params: list[torch.nn.Parameter]
    compute_dtype: torch.dtype
    device_type: str
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    total_steps: int
    step: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)
    grad_norms: list[float] = field(default_factory=list)  # before clipping, per step run here
    shard: Shard | None = None  # under torchrun: this rank
    ddp: Any = None  # under torchrun: the model in DistributedDataParallel

    @property
    def writes(self) -> bool:
        """Whether this process saves (rank 0 under torchrun)."""
        return self.shard is None or self.shard.is_main

    @property
    def low_precision(self) -> bool:
        """Whether the forward pass runs autocast to a 16-bit dtype."""
        return self.compute_dtype in (torch.bfloat16, torch.float16)


def _set_up(
    model: Any, config: TrainConfig, conversations: int, resume_from: Path | None,
    load_in_4bit: bool,
) -> _Run:  # fmt: skip
    """LoRA on the prepared model, float32 trainable weights, optimizer, schedule, and the
    state of the checkpoint ``resume_from`` when given."""
    compute_dtype = model_dtype(model)  # before prepare_model_for_kbit_training's fp32 casts
    model = prepare_for_training(model, config, load_in_4bit)
    if resume_from is not None:
        model = load_adapter(model, resume_from, trainable=True)
    else:
        model = add_lora(model, config)
    params = [p for p in model.parameters() if p.requires_grad]
    # Mixed precision: trainable weights in float32, the forward pass autocast to the weights'
    # dtype, a gradient scaler for float16 on the GPU.
    for param in params:
        param.data = param.data.float()
    device_type = model_device(model).type
    scaler = torch.amp.GradScaler(
        device_type, enabled=compute_dtype == torch.float16 and device_type == "cuda"
    )
    optimizer = build_optimizer(model, config)
    total_steps = count_steps(conversations, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(total_steps, config.warmup_ratio)
    )
    run = _Run(model, params, compute_dtype, device_type, optimizer, scheduler, scaler, total_steps)
    if resume_from is not None:
        run.step, run.skipped = restore_checkpoint(
            Path(resume_from), optimizer, scheduler, scaler, config, load_in_4bit
        )
    return run


def _accumulate(
    run: _Run, processor: Any, record: dict[str, Any], root: Path, config: TrainConfig,
    sync: bool = True,
) -> float | None:  # fmt: skip
    """Forward and backward pass of one conversation; its loss, or None when it adds nothing
    (no labelled token, or a loss that is not finite: listed as skipped).

    Under torchrun the pass goes through DDP (gradients all-reduced on the rank's last
    conversation of the step, ``sync``); a conversation that adds nothing still runs its pass,
    at weight 0, so that no rank misses an all-reduce."""
    rid = str(record.get("id", "?"))
    image = load_image(root, str(record["image"]), what=f"conversation '{rid}'")
    batch = encode_conversation(processor, image, record, config.max_length)
    labelled = bool((batch["labels"] != IGNORE_INDEX).any())
    if not labelled:
        run.skipped.append({"id": rid, "step": run.step + 1, "why": "no labelled token"})
        if run.ddp is None:
            return None
    batch = to_model(batch, run.model)
    model = run.model if run.ddp is None else run.ddp
    sync_context = nullcontext() if run.ddp is None or sync else run.ddp.no_sync()
    with sync_context:
        with torch.autocast(run.device_type, dtype=run.compute_dtype, enabled=run.low_precision):
            output = model(**batch)
        value = float(output.loss.detach()) if labelled else math.nan
        usable = labelled and math.isfinite(value)
        if labelled and not usable:
            run.skipped.append({"id": rid, "step": run.step + 1, "why": f"loss {value}"})
        if usable:
            world = 1 if run.shard is None else run.shard.world
            run.scaler.scale(output.loss * world / config.grad_accum).backward()
        elif run.ddp is not None:  # adds nothing, but joins the step's all-reduce
            (output.logits.float().sum() * 0.0).backward()
    return value if usable else None


def _apply_step(run: _Run, added: int) -> bool:
    """One optimizer step over the accumulated gradient; False when it was not applied
    (nothing added, or a gradient norm that is not finite: listed as skipped)."""
    applied = False
    if added:
        run.scaler.unscale_(run.optimizer)
        norm = float(torch.nn.utils.clip_grad_norm_(run.params, 1.0))
        run.grad_norms.append(norm)
        if math.isfinite(norm) or run.scaler.is_enabled():  # the scaler skips inf itself
            run.scaler.step(run.optimizer)
            run.scaler.update()
            applied = True
        else:
            run.skipped.append({"step": run.step + 1, "why": f"gradient norm {norm}"})
    run.optimizer.zero_grad(set_to_none=True)
    with warnings.catch_warnings():  # a first step that was skipped: nothing to warn about
        warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
        run.scheduler.step()
    run.step += 1
    return applied


def merge_skipped(per_rank: Sequence[Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Every rank's skipped conversations and steps, once each (a step's gradient norm is the
    same on every rank, and a resumed run restores what was merged before), by step then id."""
    unique = {json.dumps(entry, sort_keys=True): entry for part in per_rank for entry in part}
    return sorted(unique.values(), key=lambda e: (int(e.get("step", 0)), str(e.get("id", ""))))


def _share_skipped(run: _Run) -> None:
    """Under torchrun: every rank learns what the others skipped (call on every rank)."""
    if run.shard is None:
        return
    import torch.distributed as dist

    parts: list[list[dict[str, Any]] | None] = [None] * run.shard.world
    dist.all_gather_object(parts, run.skipped)
    run.skipped = merge_skipped([part or [] for part in parts])


def _checkpoint(run: _Run, output_dir: Path, config: TrainConfig, load_in_4bit: bool) -> None:
    """Save ``checkpoint-STEP`` and drop the oldest beyond ``save_total_limit`` (rank 0; every
    rank calls it, to share what it skipped)."""
    _share_skipped(run)
    if not run.writes:
        return
    state = {
        "step": run.step, "total_steps": run.total_steps, "load_in_4bit": load_in_4bit,
        "skipped": run.skipped, **asdict(config),
    }  # fmt: skip
    folder = Path(output_dir) / f"checkpoint-{run.step}"
    save_checkpoint(run.model, folder, run.optimizer, run.scheduler, run.scaler, state)
    prune_checkpoints(output_dir, config.save_total_limit)


def _step_conversations(run: _Run, grad_accum: int) -> list[int]:
    """The conversation counters of the next step this process handles: all ``grad_accum`` of
    them, or under torchrun every N-th from its rank's (``grad_accum`` divides by N)."""
    first = run.step * grad_accum
    micro = list(range(first, first + grad_accum))
    return micro if run.shard is None else micro[run.shard.rank :: run.shard.world]


def _run_steps(
    run: _Run,
    processor: Any,
    records: Sequence[dict[str, Any]],
    root: Path,
    output_dir: Path,
    config: TrainConfig,
    load_in_4bit: bool,
    progress: bool,
    on_step: StepCallback | None,
) -> list[float]:
    """Steps from ``run.step`` to ``run.total_steps``; the loss of every applied step."""
    run.model.train()
    losses: list[float] = []
    bar = tqdm(
        total=run.total_steps, initial=run.step, desc="LoRA", unit="step",
        disable=not (progress and run.writes),
    )  # fmt: skip
    while run.step < run.total_steps:
        running, added = 0.0, 0  # conversations that added to this step's gradient
        mine = _step_conversations(run, config.grad_accum)
        for number, micro in enumerate(mine):
            epoch, position = divmod(micro, len(records))
            record = records[epoch_order(len(records), config.seed, epoch)[position]]
            value = _accumulate(run, processor, record, root, config, number == len(mine) - 1)
            if value is not None:
                running += value / config.grad_accum
                added += 1
        if run.shard is not None:  # the step's loss and count over all ranks
            running, added = sum_over_ranks([running, added], model_device(run.model))
        applied = _apply_step(run, int(added))
        if applied:
            losses.append(running)
        bar.update(1)
        if applied:
            bar.set_postfix(loss=f"{losses[-1]:.4f}", lr=f"{run.scheduler.get_last_lr()[0]:.2e}")
        if on_step is not None:
            on_step(run.step, losses[-1] if applied else None)
        if config.save_steps and run.step % config.save_steps == 0 and run.step < run.total_steps:
            _checkpoint(run, output_dir, config, load_in_4bit)
    bar.close()
    return losses


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
    shard: Shard | None = None,
) -> tuple[Any, list[float]]:
    """Train LoRA (batch of one conversation, ``grad_accum`` per step); returns model, losses.

    A conversation without a labelled token, or with a loss that is not finite, adds nothing to
    its step; a step where nothing was added, or whose gradient is not finite, is not applied.
    Both are listed under ``skipped`` in ``training_info.json`` (``losses`` has one entry per
    applied step). ``on_step(step, loss or None)`` is called after every step; ``report`` is
    added to ``training_info.json``. Under torchrun (``shard``) every rank takes every N-th
    conversation of each step, DDP averages the gradients (the losses scaled so that the step
    is the one a single process takes), and rank 0 alone saves.
    """
    torch.manual_seed(config.seed)
    run = _set_up(model, config, len(records), resume_from, load_in_4bit)
    if shard is not None:
        from torch.nn.parallel import DistributedDataParallel

        device = model_device(run.model)
        ids = [device.index] if device.type == "cuda" else None
        run.shard, run.ddp = shard, DistributedDataParallel(run.model, device_ids=ids)
    losses = _run_steps(
        run, processor, records, root, output_dir, config, load_in_4bit, progress, on_step
    )
    run.model.eval()
    _share_skipped(run)
    if run.writes:
        save_adapter(run.model, Path(output_dir))  # trained weights saved in float32
    for param in run.params:  # back to the base model's dtype, ready for inference
        param.data = param.data.to(run.compute_dtype)
    info = {
        "config": asdict(config), "load_in_4bit": load_in_4bit, "steps": run.step,
        "losses": losses, "conversations": len(records), "skipped": run.skipped,
        "grad_norms": run.grad_norms,
        **(report or {}),
    }  # fmt: skip
    if run.writes:
        atomic_write_json(Path(output_dir) / "training_info.json", info)
    return run.model, losses
