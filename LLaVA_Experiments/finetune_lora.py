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
import os
import shutil
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from LLaVA_Experiments.adapters import CONFIG_NAME
from LLaVA_Experiments.conversations import load_dataset
from LLaVA_Experiments.hub import DEFAULT_MODEL
from LLaVA_Experiments.options import add_dtype_option
from LLaVA_Experiments.recipe import TrainConfig
from rfd_common.errors import UserError, exit_on_user_error
from rfd_common.files import ensure_writable_dir
from UniversalFakeDetect.options import default_checkpoints_dir

if TYPE_CHECKING:
    from UniversalFakeDetect.features.shard import Shard


def build_parser() -> argparse.ArgumentParser:
    """The flags of ``python -m LLaVA_Experiments.finetune_lora``; defaults from the recipe."""
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


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The recipe as the flags set it (checked)."""
    if args.lora_r < 1 or args.grad_accum < 1 or args.epochs <= 0 or args.lr <= 0:
        raise UserError("--lora_r and --grad_accum must be >= 1, --epochs and --lr > 0")
    if args.mm_projector_lr < 0 or args.max_length < 1:
        raise UserError("--mm_projector_lr must be >= 0 and --max_length >= 1")
    return TrainConfig(
        lora_r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
        lr=args.lr, mm_projector_lr=args.mm_projector_lr, epochs=args.epochs,
        grad_accum=args.grad_accum, max_length=args.max_length,
        gradient_checkpointing=not args.no_gradient_checkpointing, save_steps=args.save_steps,
        save_total_limit=args.save_total_limit,
        seed=args.seed, max_steps=args.max_steps,
    )  # fmt: skip


def _resume_point(args: argparse.Namespace, output_dir: Path) -> Path | None:
    """The checkpoint ``--resume`` names (None without it); an adapter already in
    ``--output_dir`` needs ``--overwrite`` or ``--resume``."""
    from LLaVA_Experiments.checkpoints import is_checkpoint, latest_checkpoint

    if args.resume:
        resume_from = (
            latest_checkpoint(output_dir) if args.resume == "latest" else Path(args.resume)
        )
        if resume_from is None or not is_checkpoint(resume_from):
            raise UserError(f"--resume: no checkpoint found ({args.resume}, in {output_dir})")
        return resume_from
    if (output_dir / CONFIG_NAME).is_file() and not args.overwrite:
        raise UserError(
            f"--output_dir {output_dir}: holds an adapter; pass --overwrite or --resume"
        )
    return None


def _fitting_records(
    args: argparse.Namespace, records: list[dict[str, Any]], root: Path, config: TrainConfig
) -> tuple[Any, list[dict[str, Any]], list[dict[str, Any]]]:
    """The processor, the conversations that fit ``--max_length`` and those dropped (listed on
    stderr); checked with the processor alone, before minutes of loading the weights."""
    from LLaVA_Experiments.encoding import check_lengths
    from LLaVA_Experiments.loading import load_processor

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
    return processor, records, dropped


def _summary(output_dir: Path, losses: list[float]) -> str:
    """The last line: where the adapter is, steps, skipped steps, first and last loss."""
    first = f"{losses[0]:.4f}" if losses else "n/a"
    last = f"{losses[-1]:.4f}" if losses else "n/a"
    info = json.loads((output_dir / "training_info.json").read_text())
    count = len(info["skipped"])
    skipped = f"; {count} skipped, see training_info.json" if count else ""
    return f"adapter saved to {output_dir} ({info['steps']} steps{skipped}; loss {first} -> {last})"


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> int:
    """Check data, lengths and resume settings before loading the weights, then train."""
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    shard = _join_job(args, config)  # misuse of torchrun is said before anything is loaded
    from LLaVA_Experiments.checkpoints import check_resume_state, read_state
    from LLaVA_Experiments.loading import load_model
    from LLaVA_Experiments.training import train
    from UniversalFakeDetect.data.data_root import resolve_data_root
    from UniversalFakeDetect.engine.distributed import end_process_group, main_rank_first

    root = resolve_data_root(args.data_root)
    records = load_dataset(Path(args.data), root)
    output_dir = Path(args.output_dir)
    resume_from = _resume_point(args, output_dir)
    if resume_from is not None:  # refuse other settings before loading anything
        check_resume_state(read_state(resume_from), config, args.load_in_4bit, resume_from)
    processor, records, dropped = _fitting_records(args, records, root, config)
    with main_rank_first(shard):  # rank 0 clears and creates the output folder
        if args.overwrite and output_dir.is_dir() and not args.resume and _writes(shard):
            shutil.rmtree(output_dir)
        ensure_writable_dir(output_dir, flag="--output_dir")
    model, processor = load_model(
        args.model, args.device, args.load_in_4bit, args.dtype, processor=processor
    )
    processor.tokenizer.padding_side = "right"
    _, losses = train(
        model, processor, records, root, output_dir, config, resume_from, args.load_in_4bit,
        progress=True, report={"dropped_too_long": dropped}, shard=shard,
    )  # fmt: skip
    if shard is not None:
        end_process_group()
    if _writes(shard):
        print(_summary(output_dir, losses))
    return 0


def _writes(shard: Shard | None) -> bool:
    return shard is None or shard.is_main


def _join_job(args: argparse.Namespace, config: TrainConfig) -> Shard | None:
    """Under torchrun: this rank's shard and its GPU (``LOCAL_RANK``); misuse said first."""
    from UniversalFakeDetect.features.shard import Shard

    shard = Shard.from_env()
    if shard is None:
        return None
    if args.device is not None:
        raise UserError("--device: under torchrun each rank takes the GPU of its LOCAL_RANK")
    if config.grad_accum % shard.world:
        raise UserError(
            f"--grad_accum {config.grad_accum}: under torchrun each step's conversations are "
            f"split over the {shard.world} ranks; give a multiple of {shard.world}"
        )
    import torch

    from UniversalFakeDetect.engine.distributed import init_process_group

    device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}" if torch.cuda.is_available() else "cpu"
    args.device = device
    init_process_group(device, timedelta(minutes=30))
    return shard


if __name__ == "__main__":
    sys.exit(main())
