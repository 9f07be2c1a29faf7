"""Estimate the GPU memory the LLaVA explainer needs with llava-hf/llava-v1.6-vicuna-7b-hf.

ARITHMETIC ESTIMATES, NOT MEASUREMENTS. The real architecture is built on the meta device (no
weights, nothing downloaded) from the published config values (Vicuna-7B Llama text model and
the CLIP ViT-L/14-336 vision tower, anyres pinpoints up to 672x672 / 1008x336); parameter
counts and dtypes come from that model, and the LoRA counts from applying exactly
``LLaVA_Experiments.adapters.add_lora`` with ``TrainConfig()`` defaults. Image-token
counts come from transformers' own LlavaNextProcessor (configured by hand as published) and are
cross-checked with the model's feature count on meta tensors. Memory = weights + trainable
parameters, their gradients and AdamW states (exact arithmetic) + a rough activation term
(KV cache, logits, one layer's transients; an estimate only).

python benchmarks/llava_memory_estimate.py [--batch_size 4] [--new_tokens 256]
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from LLaVA_Experiments.adapters import add_lora
from LLaVA_Experiments.four_bit import four_bit_plan
from LLaVA_Experiments.full_size import (
    PINPOINTS,
    build_random_llava,
    full_size_processor,
    llava_7b_config,
)
from LLaVA_Experiments.hub import DEFAULT_MODEL
from LLaVA_Experiments.recipe import TrainConfig

GIB = 2**30
# nf4 with double quantisation (the BitsAndBytesConfig of four_bit.four_bit_kwargs): 4 bits per
# weight, an 8-bit absmax per block of 64 weights, and a float32 scale per 256 of those absmaxes
NF4_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)
TEXT_TOKENS = 100  # Vicuna system prompt + question + role tags: about 80-100 tokens
ANSWER_TOKENS = 300  # make_train_data's --max_new_tokens: the longest training answer
NOTES = (
    "* activations: a ROUGH estimate, not measured. Inference: the KV cache of the whole "
    "sequence per image (0.5 MiB per token) plus one MLP's "
    "intermediates. Training: one conversation, gradient checkpointing on (every layer's input "
    "kept, one layer recomputed), logits with their float32 copy and gradient.",
    "Not counted: the CUDA context and allocator slack (about 0.5-1.5 GiB), the foreach AdamW "
    "step's temporary copies, the 4-bit layers' dequantised weights during a forward (one "
    "layer at a time, <0.1 GiB).",
    "4-bit notes: the nf4 count is what transformers' own skip matching (four_bit_plan, "
    "called on the meta model above) makes of load_model's skip list: the language model's "
    "nn.Linear layers become nf4, the vision tower, the projector and lm_head stay 16-bit; "
    "prepare_model_for_kbit_training then casts every non-nf4 weight (embeddings, lm_head, "
    "norms, vision tower, projector) to float32, which the nf4 training row counts. The 4-bit "
    "path has not run (it needs bitsandbytes and a GPU).",
)


def build_meta_model(dtype: torch.dtype = torch.bfloat16) -> Any:
    """The 7B LlavaNextForConditionalGeneration on the meta device (shapes, no storage)."""
    return build_random_llava(llava_7b_config(), dtype=dtype, device="meta")


def image_token_counts(processor: Any, sizes: list[list[int]]) -> list[int]:
    """Image tokens per (height, width), from the processor's own feature-count method."""
    return list(processor._get_num_multimodal_tokens(image_sizes=sizes)["num_image_tokens"])


def processed_counts(processor: Any, model: Any, size: list[int]) -> tuple[int, int, int]:
    """(tokens the processor inserts, crops, features the model makes) for a blank image."""
    from PIL import Image

    image = Image.fromarray(np.zeros((*size, 3), dtype=np.uint8))
    inputs = processor(images=[image], text=[processor.image_token], return_tensors="pt")
    inserted = int((inputs["input_ids"] == processor.image_token_id).sum())
    pixels = inputs["pixel_values"].to("meta", model.dtype)
    with torch.no_grad():
        features = model.get_image_features(
            pixel_values=pixels, image_sizes=inputs["image_sizes"]
        ).pooler_output
    return inserted, int(inputs["pixel_values"].shape[1]), int(features[0].shape[0])


@dataclass
class Counts:
    """Parameter counts and shapes that the memory arithmetic needs."""

    total: int
    quantized: int  # nn.Linear weights load_in_4bit turns into nf4 (four_bit.four_bit_plan)
    lora: int
    projector: int
    layers: int
    hidden: int
    intermediate: int
    vocab: int


def count_params(model: Any) -> Counts:
    """Counts of the bare model (before LoRA), LoRA fields left at 0. The nf4 count uses the
    layers transformers itself would quantise with load_model's skip list (four_bit_plan)."""
    quantized_names, _ = four_bit_plan(model)
    modules = dict(model.named_modules())
    quantized = sum(modules[name].weight.numel() for name in quantized_names)
    text = model.config.text_config
    return Counts(
        total=sum(p.numel() for p in model.parameters()),
        quantized=quantized,
        lora=0,
        projector=sum(p.numel() for p in model.model.multi_modal_projector.parameters()),
        layers=text.num_hidden_layers,
        hidden=text.hidden_size,
        intermediate=text.intermediate_size,
        vocab=text.vocab_size,
    )


def lora_params(model: Any) -> tuple[int, int, torch.dtype, torch.dtype]:
    """Apply add_lora(TrainConfig()) to ``model``: (LoRA params, trainable projector params,
    a lora_A weight's dtype, the trainable projector copy's dtype)."""
    peft_model = add_lora(model, TrainConfig())
    lora = projector = 0
    lora_dtype = projector_dtype = None
    for name, param in peft_model.named_parameters():
        if not param.requires_grad:
            continue
        if "lora_" in name:
            lora += param.numel()
            if "lora_A" in name:
                lora_dtype = param.dtype
        elif "multi_modal_projector" in name:
            projector += param.numel()
            projector_dtype = param.dtype
        else:
            raise RuntimeError(f"unexpected trainable parameter {name}")
    return lora, projector, lora_dtype, projector_dtype


@dataclass
class Estimate:
    """Bytes of one setting; ``activations`` is the rough term."""

    name: str
    weights: float
    trainable: float = 0.0
    grads: float = 0.0
    adamw: float = 0.0
    activations: float = 0.0

    @property
    def fixed(self) -> float:
        """Everything but the activations."""
        return self.weights + self.trainable + self.grads + self.adamw


def weight_bytes(c: Counts, four_bit: bool, rest_bytes: int = 2) -> float:
    """Frozen base weights: all bf16, or 4-bit Linear weights + ``rest_bytes`` for the rest."""
    if not four_bit:
        return 2.0 * c.total
    return NF4_BYTES * c.quantized + rest_bytes * (c.total - c.quantized)


def inference_activations(c: Counts, context: int, new_tokens: int, batch: int) -> float:
    """KV cache of context + new tokens (K and V, every layer, bf16) plus the largest
    transient: one MLP over the whole sequence and the last position's logits (generation and
    explain.fake_probabilities keep only those)."""
    kv = batch * (context + new_tokens) * c.layers * 2 * c.hidden * 2
    transient = batch * ((context + new_tokens) * 3 * c.intermediate * 2 + c.vocab * 4)
    return float(kv + transient)


def training_activations(c: Counts, tokens: int, crops: int) -> float:
    """One conversation, gradient checkpointing on: every layer's input kept (bf16), one
    layer recomputed with its LoRA dropout copies, logits with their float32 copy and
    gradient, and the trainable projector's saved inputs (576 patches per crop)."""
    checkpoints = c.layers * tokens * c.hidden * 2
    one_layer = tokens * (12 * c.hidden + 5 * c.intermediate) * 2
    logits = tokens * c.vocab * (2 + 4 + 4)
    projector = crops * 576 * (1024 + 2 * c.hidden) * 2
    return float(checkpoints + one_layer + logits + projector)


def estimates(
    c: Counts, image_tokens: int, crops: int, batch: int, new_tokens: int, answer_tokens: int
) -> list[Estimate]:
    """Inference (bf16, nf4) at ``batch`` and LoRA training (bf16, nf4) at one conversation."""
    context = image_tokens + TEXT_TOKENS
    infer_act = inference_activations(c, context, new_tokens, batch)
    train_act = training_activations(c, context + answer_tokens, crops)
    # finetune_lora.train keeps every trainable weight in float32 (master weights under
    # autocast): the LoRA matrices and the projector's trainable copy (modules_to_save); grads
    # and AdamW states follow the float32 dtype
    lora_fp32 = 4.0 * c.lora
    proj_fp32 = 4.0 * c.projector
    return [
        Estimate(f"inference bf16, batch {batch}", weight_bytes(c, False), activations=infer_act),
        Estimate(f"inference nf4, batch {batch}", weight_bytes(c, True), activations=infer_act),
        Estimate(
            "LoRA training bf16", weight_bytes(c, False), lora_fp32 + proj_fp32,
            lora_fp32 + proj_fp32, 2 * (lora_fp32 + proj_fp32), train_act,
        ),
        Estimate(
            "LoRA training nf4 (QLoRA)", weight_bytes(c, True, rest_bytes=4),
            lora_fp32 + proj_fp32, lora_fp32 + proj_fp32, 2 * (lora_fp32 + proj_fp32), train_act,
        ),
    ]  # fmt: skip


def format_table(rows: list[Estimate]) -> str:
    """The GiB of each part of each setting, one row per setting."""
    head = (
        f"{'setting':<28} {'weights':>8} {'trainable':>9} {'grads':>7} {'AdamW':>7} "
        f"{'subtotal':>9} {'+ activ.*':>10} {'= total':>8}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.name:<28} {r.weights / GIB:>8.2f} {r.trainable / GIB:>9.2f} "
            f"{r.grads / GIB:>7.2f} {r.adamw / GIB:>7.2f} {r.fixed / GIB:>9.2f} "
            f"{r.activations / GIB:>10.2f} {(r.fixed + r.activations) / GIB:>8.2f}"
        )
    return "\n".join(lines)


def _print_parameters(model: Any, counts: Counts) -> None:
    """Parameters per part of the model, and what --load_in_4bit makes nf4."""
    parts = {
        name: sum(p.numel() for p in child.parameters())
        for name, child in model.model.named_children()
    }
    parts["lm_head"] = model.lm_head.weight.numel()
    print(f"total parameters: {counts.total:,} (bf16 weights {2 * counts.total / GIB:.2f} GiB)")
    for name, n in parts.items():
        print(f"  {name:<22} {n:>14,}")
    leftover = counts.total - sum(parts.values())
    if leftover:
        print(f"  {'other (image_newline)':<22} {leftover:>14,}")
    quantized_names, kept_names = four_bit_plan(model)
    kept_parts = sorted({".".join(n.split(".")[:2]) for n in kept_names})
    print(
        f"nf4 with --load_in_4bit: {counts.quantized:,} weights in {len(quantized_names)} "
        f"nn.Linear layers; kept 16-bit: {counts.total - counts.quantized:,} (all other "
        f"weights, and {len(kept_names)} nn.Linear layers in {', '.join(kept_parts)})"
    )
    outside = [n for n in quantized_names if not n.startswith("model.language_model.")]
    if outside:
        print(f"WARNING: layers outside the language model would be quantised: {outside[:3]}")


def _print_image_tokens(model: Any) -> list[tuple[str, int, int]]:
    """Image tokens per size, cross-checked; returns ``(label, tokens, crops)`` of the dataset's
    256x256 images and of the largest case."""
    processor = full_size_processor()
    sizes = [[256, 256], *PINPOINTS]
    counted = image_token_counts(processor, sizes)
    print("\nimage tokens (LlavaNextProcessor._get_num_multimodal_tokens, checked against the")
    print("tokens the processor inserts and the features the meta model makes):")
    checked = {}
    for size, n in zip(sizes, counted, strict=True):
        inserted, crops, features = processed_counts(processor, model, size)
        checked[tuple(size)] = (n, crops)
        agree = "agree" if n == inserted == features else "DISAGREE"
        print(
            f"  {size[0]:>4}x{size[1]:<4} (HxW): {n:>5} tokens, {crops} crops of 336 px "
            f"(inserted {inserted}, model features {features}: {agree})"
        )
    small_tokens, small_crops = checked[(256, 256)]
    large_size = max(checked, key=lambda s: checked[s][0])
    large_tokens, large_crops = checked[large_size]
    print(
        f"256x256 image (the dataset's size): {small_tokens} image tokens; largest case: "
        f"{large_tokens} ({large_size[0]}x{large_size[1]} or larger square images; "
        "unpadding only removes tokens)"
    )
    return [
        ("256x256 image", small_tokens, small_crops),
        (f"largest case ({large_size[0]}x{large_size[1]})", large_tokens, large_crops),
    ]


def _print_lora(model: Any, counts: Counts) -> None:
    """LoRA's trainable parameters (``counts.lora`` set here) and their dtypes."""
    lora, projector, lora_dtype, projector_dtype = lora_params(model)
    counts.lora = lora
    config = TrainConfig()
    print(
        f"\nLoRA (add_lora with TrainConfig(): r {config.lora_r}, alpha {config.lora_alpha}, "
        f"q/k/v/o/gate/up/down of the language model): {lora:,} trainable"
    )
    print(f"projector (modules_to_save, a trainable copy): {projector:,} trainable")
    print(
        f"trainable in all: {lora + projector:,} = "
        f"{100 * (lora + projector) / counts.total:.2f}% of the base model"
    )
    print(
        f"dtypes peft gives them on a bf16 base (checked on meta): lora_A weight {lora_dtype}, "
        f"projector copy {projector_dtype}; finetune_lora.train trains both in float32"
    )
    if counts.projector != projector:
        print("WARNING: the projector copy's size differs from the projector's")


def _print_estimates(
    counts: Counts, cases: list[tuple[str, int, int]], args: argparse.Namespace
) -> None:
    """The memory table of each image case."""
    for label, tokens, crops in cases:
        context = tokens + TEXT_TOKENS
        print(
            f"\n{label}: {tokens} image tokens + ~{TEXT_TOKENS} prompt tokens; inference "
            f"+ {args.new_tokens} new tokens, training + {args.answer_tokens} answer tokens "
            f"({context + args.answer_tokens} in all). GiB:"
        )
        rows = estimates(counts, tokens, crops, args.batch_size, args.new_tokens,
                         args.answer_tokens)  # fmt: skip
        print(format_table(rows))


def main() -> None:
    """Build the 7B model on meta, count, and print the estimates with their caveats."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch_size", type=int, default=4, help="images per inference batch")
    parser.add_argument("--new_tokens", type=int, default=256, help="explanation length")
    parser.add_argument("--answer_tokens", type=int, default=ANSWER_TOKENS)
    args = parser.parse_args()

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=FutureWarning)
    banner = "ARITHMETIC ESTIMATES, NOT MEASUREMENTS (nothing ran on a GPU)"
    print(f"{'=' * len(banner)}\n{banner}\n{'=' * len(banner)}")
    start = time.perf_counter()
    model = build_meta_model(torch.bfloat16)
    counts = count_params(model)
    print(
        f"{DEFAULT_MODEL} built on the meta device from the published config in "
        f"{time.perf_counter() - start:.1f} s"
    )
    _print_parameters(model, counts)
    cases = _print_image_tokens(model)
    _print_lora(model, counts)
    _print_estimates(counts, cases, args)
    print()
    for note in NOTES:
        print(textwrap.fill(note, width=93))
    print(f"\n{banner}")


if __name__ == "__main__":
    main()
