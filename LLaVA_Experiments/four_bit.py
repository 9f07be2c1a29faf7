"""``--load_in_4bit``: the layers that stay 16-bit, the bitsandbytes settings, which ``nn.Linear``
layers become nf4 (decided as transformers decides), and the check after loading."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from rfd_common.errors import UserError

# With --load_in_4bit these stay 16-bit: the vision tower, the projector (trained in full) and
# the output layer; every other nn.Linear (the language model's) becomes nf4. transformers 5
# matches each name from the start of a module's full name up to a dot, or as its suffix, so the
# names are the full paths in LlavaNextForConditionalGeneration ("vision_tower" alone would
# match only the tower module itself, not the layers inside it). transformers 4.x matched
# "name." anywhere in the path, which these names satisfy too.
FOUR_BIT_SKIP = ("model.vision_tower", "model.multi_modal_projector", "lm_head")


def four_bit_kwargs(target: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    """``from_pretrained`` arguments for an nf4 load on ``target`` (double quantisation,
    ``FOUR_BIT_SKIP`` kept 16-bit, computing in ``dtype``); needs bitsandbytes and CUDA."""
    try:
        import bitsandbytes  # noqa: F401
        from transformers import BitsAndBytesConfig
    except ImportError as exc:
        raise UserError("--load_in_4bit needs bitsandbytes: pip install bitsandbytes") from exc
    if target.type != "cuda":
        raise UserError("--load_in_4bit needs a CUDA GPU")
    config = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_compute_dtype=dtype,
        bnb_4bit_use_double_quant=True,
        bnb_4bit_quant_type="nf4",
        llm_int8_skip_modules=list(FOUR_BIT_SKIP),
    )
    return {"quantization_config": config, "device_map": {"": target.index or 0}}


def _should_quantize(name: str, patterns: Sequence[str]) -> bool:
    """Whether transformers' bitsandbytes integration converts the module ``name``.

    Calls transformers' own matcher (``quantizers_utils.should_convert_module``, used by
    ``replace_with_bnb_linear``); transformers 4.x, which lacks it, skipped a module when
    ``pattern + "."`` occurred in its name or the name equalled the pattern.
    """
    try:
        from transformers.quantizers.quantizers_utils import should_convert_module
    except ImportError:  # transformers 4.x
        return not any(f"{key}." in f"{name}." for key in patterns)
    return should_convert_module(name, list(patterns))


def four_bit_plan(model: Any) -> tuple[list[str], list[str]]:
    """``(quantized, kept)``: the names of the ``nn.Linear`` modules that ``--load_in_4bit``
    turns into nf4 and those it keeps 16-bit, decided as transformers decides them.

    The skip list is built as the bitsandbytes quantizer builds it (``FOUR_BIT_SKIP`` plus the
    model's ``_keep_in_fp32_modules``); ``model`` may live on the meta device.
    """
    from transformers.quantizers.base import HfQuantizer

    keep_fp32 = getattr(model, "_keep_in_fp32_modules", None)
    patterns = HfQuantizer.get_modules_to_not_convert(
        model, list(FOUR_BIT_SKIP), list(keep_fp32) if keep_fp32 else None
    )
    quantized: list[str] = []
    kept: list[str] = []
    for name, module in model.named_modules():
        if type(module) is torch.nn.Linear:  # what replace_with_bnb_linear converts
            (quantized if _should_quantize(name, patterns) else kept).append(name)
    return quantized, kept


def check_four_bit(model: Any) -> None:
    """After a 4-bit load: the vision tower, projector and lm_head must still be 16-bit.

    Checked by the names themselves (``FOUR_BIT_SKIP`` and what lies under them), not by
    transformers' matcher, so a transformers that matches otherwise is caught.
    """
    wrong = [
        name
        for name, module in model.named_modules()
        if "4bit" in type(module).__name__
        and any(name == key or name.startswith(f"{key}.") for key in FOUR_BIT_SKIP)
    ]
    if wrong:
        raise UserError(
            f"--load_in_4bit quantised {len(wrong)} layers that must stay 16-bit (e.g. "
            f"{wrong[0]}): this transformers version matches llm_int8_skip_modules otherwise; "
            "run without --load_in_4bit"
        )
