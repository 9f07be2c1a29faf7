"""What the model says about a batch of images: its generated text, and P(fake) read from the
logits of ``real`` vs ``fake`` right after ``Answer:``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from LLaVA_Experiments.loading import to_model
from LLaVA_Experiments.prompts import verdict_token_ids


@torch.no_grad()
def generate_texts(
    model: Any,
    processor: Any,
    images: Sequence[Any],
    prompts: Sequence[str],
    max_new_tokens: int,
    **generate_kwargs: Any,
) -> list[str]:
    """Greedy (by default) batched generation; returns only the new text of each prompt."""
    processor.tokenizer.padding_side = "left"
    inputs = processor(images=list(images), text=list(prompts), return_tensors="pt", padding=True)
    inputs = to_model(inputs, model)
    if max_new_tokens <= 0:
        return ["" for _ in prompts]
    kwargs = {"do_sample": False, "pad_token_id": processor.tokenizer.pad_token_id}
    kwargs.update(generate_kwargs)
    output = model.generate(**inputs, max_new_tokens=max_new_tokens, **kwargs)
    new = output[:, inputs["input_ids"].shape[1] :]
    return [t.strip() for t in processor.batch_decode(new, skip_special_tokens=True)]


@torch.no_grad()
def fake_probabilities(
    model: Any, processor: Any, images: Sequence[Any], contexts: Sequence[str]
) -> list[float]:
    """P(fake) from the next-token logits of ``real`` vs ``fake`` after each context.

    Each context must end with ``Answer:``; the two logits are softmaxed against each other.
    """
    real_id, fake_id = verdict_token_ids(processor.tokenizer)
    processor.tokenizer.padding_side = "left"
    inputs = processor(images=list(images), text=list(contexts), return_tensors="pt", padding=True)
    inputs = to_model(inputs, model)
    logits = model(**inputs, logits_to_keep=1).logits[:, -1, :].float()  # last position only
    pair = torch.stack([logits[:, real_id], logits[:, fake_id]], dim=1)
    return torch.softmax(pair, dim=1)[:, 1].cpu().tolist()
