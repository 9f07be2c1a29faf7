"""Conversations as token ids for training: the image prompt, the later turns, labels on the
assistant's tokens only, lengths counted without pixels, and the ``--max_length`` check."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from LLaVA_Experiments.conversations import conversation_turns
from LLaVA_Experiments.images import image_size
from LLaVA_Experiments.prompts import IMAGE_TOKEN, turn_prefix
from rfd_common.errors import UserError

IGNORE_INDEX = -100


def _turn_segments(
    tokenizer: Any, pairs: Sequence[tuple[str, str]]
) -> list[tuple[list[int], bool]]:
    """Token ids after the first prompt, as ``(ids, is_assistant)`` segments: each reply with
    its ``</s>``, and the prompts of later turns."""
    eos = tokenizer.eos_token_id
    segments: list[tuple[list[int], bool]] = []
    for index, (user, reply) in enumerate(pairs):
        if index:
            prompt = tokenizer(turn_prefix(user, first=False), add_special_tokens=False)
            segments.append((list(prompt["input_ids"]), False))
        # no leading space: sentencepiece (Vicuna) adds its own word boundary
        answer = tokenizer(reply.strip(), add_special_tokens=False)["input_ids"]
        segments.append(([*answer, eos], True))
    return segments


def encode_conversation(
    processor: Any, image: Image.Image, record: dict[str, Any], max_length: int = 2048
) -> dict[str, torch.Tensor]:
    """Token ids, labels (only assistant tokens, rest -100), pixel values of one conversation.

    Truncation only ever drops assistant/user text at the end, never image tokens; a prompt
    that alone exceeds ``max_length`` is a UserError. (``finetune_lora`` refuses conversations
    that would be cut before training starts: see :func:`check_lengths`.)
    """
    tokenizer = processor.tokenizer
    pairs = conversation_turns(record)
    first = processor(
        images=[image], text=[turn_prefix(pairs[0][0], first=True)], return_tensors="pt"
    )
    ids: list[int] = first["input_ids"][0].tolist()
    labels: list[int] = [IGNORE_INDEX] * len(ids)
    for segment, is_answer in _turn_segments(tokenizer, pairs):
        ids += segment
        labels += segment if is_answer else [IGNORE_INDEX] * len(segment)
    image_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    last_image = max(i for i, t in enumerate(ids) if t == image_id)
    if last_image >= max_length:
        raise UserError(
            f"conversation '{record.get('id', '?')}': its image alone needs {last_image + 1} "
            f"tokens, more than --max_length {max_length}"
        )
    ids, labels = ids[:max_length], labels[:max_length]
    return {
        "input_ids": torch.tensor([ids]),
        "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
        "labels": torch.tensor([labels]),
        "pixel_values": first["pixel_values"],
        "image_sizes": first["image_sizes"],
    }


def image_token_count(processor: Any, height: int, width: int) -> int:
    """Image tokens the processor inserts for an image of ``height`` x ``width`` pixels."""
    counter = getattr(processor, "_get_num_multimodal_tokens", None)
    if counter is not None:
        return int(counter(image_sizes=[[height, width]])["num_image_tokens"][0])
    blank = Image.new("RGB", (width, height))  # older transformers: ask the processor itself
    inputs = processor(images=[blank], text=[IMAGE_TOKEN], return_tensors="pt")
    image_id = processor.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    return int((inputs["input_ids"] == image_id).sum())


def conversation_length(
    processor: Any, record: dict[str, Any], size: tuple[int, int], image_tokens: int | None = None
) -> int:
    """Tokens :func:`encode_conversation` makes of ``record`` with an image of ``size``
    (height, width), before any truncation; counted without processing the pixels.

    ``image_tokens`` (from :func:`image_token_count`) may be passed to reuse a count.
    """
    tokenizer = processor.tokenizer
    pairs = conversation_turns(record)
    if image_tokens is None:
        image_tokens = image_token_count(processor, *size)
    # the processor tokenizes the first prompt with one <image> expanded to image_tokens
    first = tokenizer(turn_prefix(pairs[0][0], first=True))["input_ids"]
    images_in_prompt = first.count(tokenizer.convert_tokens_to_ids(IMAGE_TOKEN))
    total = len(first) + images_in_prompt * (image_tokens - 1)
    return total + sum(len(ids) for ids, _ in _turn_segments(tokenizer, pairs))


def _too_long_error(
    too_long: Sequence[dict[str, Any]], total: int, max_length: int, drop: bool
) -> UserError:
    """The refusal that lists the conversations longer than ``max_length``."""
    listed = ", ".join(f"'{t['id']}' ({t['tokens']} tokens)" for t in too_long[:10])
    more = f" and {len(too_long) - 10} more" if len(too_long) > 10 else ""
    longest = max(t["tokens"] for t in too_long)
    advice = "" if drop else ", or pass --drop_too_long to train without them"
    return UserError(
        f"{len(too_long)} of {total} conversations need more than --max_length "
        f"{max_length} tokens, so their answers would be cut: {listed}{more}. Pass "
        f"--max_length {longest} or more (Vicuna's context is 4096){advice}"
    )


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
        raise _too_long_error(too_long, len(records), max_length, drop)
    return kept, too_long
