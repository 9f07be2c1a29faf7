"""Loading LLaVA-NeXT: the device and dtype, the processor, the weights (never random ones),
and moving processor outputs to the model.

The model is ``LlavaNextForConditionalGeneration`` with its processor (hub id
``llava-hf/llava-v1.6-vicuna-7b-hf`` by default, or any local folder holding both).
"""

from __future__ import annotations

from typing import Any

import torch

from LLaVA_Experiments.four_bit import check_four_bit, four_bit_kwargs
from LLaVA_Experiments.hub import DEFAULT_MODEL, how_to_download, model_source
from LLaVA_Experiments.options import DTYPE_NAMES
from rfd_common.errors import UserError


def pick_device(device: str | None = None) -> torch.device:
    """``--device`` (checked), else cuda when a GPU is visible, else cpu."""
    if not device:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError as exc:
        raise UserError(f"--device {device}: not a device name (cpu, cuda, cuda:1)") from exc
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {device}: no CUDA GPU is visible here; use --device cpu")
    return chosen


def resolve_dtype(name: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``auto``/None: bfloat16 on a GPU that supports it, else float16; float32 on the CPU."""
    if isinstance(name, torch.dtype):
        return name
    if name in (None, "auto"):
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if name not in DTYPE_NAMES:
        raise UserError(f"--dtype {name}: choose auto, {', '.join(DTYPE_NAMES)}")
    return getattr(torch, name)


def load_processor(model_id: str = DEFAULT_MODEL) -> Any:
    """The ``LlavaNextProcessor`` of ``model_id`` (left padding, a pad token set); cheap, so
    data can be checked against it before the weights are loaded."""
    return _processor_from(model_source(model_id), model_id)


def _processor_from(source: str, model_id: str) -> Any:
    """The processor in ``source`` with left padding and a pad token."""
    from transformers import LlavaNextProcessor

    try:
        processor = LlavaNextProcessor.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise UserError(
            f"--model {model_id}: cannot load the LLaVA-NeXT processor ({exc}). "
            + how_to_download()
        ) from exc
    processor.tokenizer.padding_side = "left"
    if processor.tokenizer.pad_token is None:
        processor.tokenizer.pad_token = (
            processor.tokenizer.unk_token or processor.tokenizer.eos_token
        )
    return processor


def _weights_from(source: str, model_id: str, kwargs: dict[str, Any]) -> Any:
    """The weights in ``source``; a failure is a :class:`UserError` saying how to get them."""
    from transformers import LlavaNextForConditionalGeneration

    try:
        return LlavaNextForConditionalGeneration.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as exc:
        raise UserError(
            f"--model {model_id}: cannot load the LLaVA-NeXT weights and processor ({exc}). "
            + how_to_download()
        ) from exc


def load_model(
    model_id: str = DEFAULT_MODEL,
    device: str | None = None,
    load_in_4bit: bool = False,
    dtype: torch.dtype | str | None = None,
    processor: Any | None = None,
) -> tuple[Any, Any]:
    """Load ``LlavaNextForConditionalGeneration`` and its processor from a hub id or a folder.

    Never falls back to random weights: missing weights are a :class:`UserError` naming the id.
    A ``processor`` already loaded with :func:`load_processor` is reused.
    """
    target = pick_device(device)
    dtype = resolve_dtype(dtype, target)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if load_in_4bit:
        kwargs.update(four_bit_kwargs(target, dtype))
    source = model_source(model_id)
    if processor is None:
        processor = _processor_from(source, model_id)
    model = _weights_from(source, model_id, kwargs)
    if load_in_4bit:
        check_four_bit(model)
    else:
        model.to(target)
    model.eval()
    processor.tokenizer.padding_side = "left"
    return model, processor


def model_device(model: Any) -> torch.device:
    """The device of the model's (first) weights."""
    return next(model.parameters()).device


def model_dtype(model: Any) -> torch.dtype:
    """The floating dtype of the weights (4-bit models: their compute parts)."""
    return next(p.dtype for p in model.parameters() if p.is_floating_point())


def to_model(inputs: Any, model: Any) -> dict[str, torch.Tensor]:
    """Move processor outputs to the model's device; pixel values to its dtype."""
    moved = {k: v.to(model_device(model)) for k, v in dict(inputs).items()}
    if "pixel_values" in moved:
        moved["pixel_values"] = moved["pixel_values"].to(model_dtype(model))
    return moved
