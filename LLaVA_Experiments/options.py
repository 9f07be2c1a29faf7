"""Command-line options the LLaVA scripts share: the weights' dtype, the device, generation.

Nothing here imports torch, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse

from LLaVA_Experiments.prompts import QUESTION

DTYPE_NAMES = ("bfloat16", "float16", "float32")


def add_dtype_option(parser: argparse.ArgumentParser) -> None:
    """``--dtype``: auto or one of :data:`DTYPE_NAMES`."""
    parser.add_argument(
        "--dtype", default="auto", choices=("auto", *DTYPE_NAMES),
        help="weights' dtype (auto: bfloat16 on a GPU that supports it, float16 on others, "
        "float32 on the CPU)",
    )  # fmt: skip


def add_generation_options(parser: argparse.ArgumentParser, max_new_tokens: int) -> None:
    """Options shared by the scripts that generate answers (data generation, explanation)."""
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--max_new_tokens", type=int, default=max_new_tokens)
    parser.add_argument("--question", default=QUESTION, help="the unguided question")
    parser.add_argument("--load_in_4bit", action="store_true")
    parser.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: cuda if any)")
    add_dtype_option(parser)
