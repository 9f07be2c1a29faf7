"""The real LLaVA-1.6 (Vicuna-7B) architecture and image processing, built without downloading.

``llava_7b_config`` writes out the published config of ``llava-hf/llava-v1.6-vicuna-7b-hf``
(Vicuna-7B Llama text model, CLIP ViT-L/14-336 vision tower, anyres pinpoints up to 672x672 /
1008x336); ``full_size_processor`` is a ``LlavaNextProcessor`` with the published image settings
(336 px crops, patch 14, CLS token dropped), so image-token counts are the real ones, and the
in-memory tokenizer of :mod:`LLaVA_Experiments.tiny_model` (text lengths are not Vicuna's).
``build_random_llava`` makes a model with random weights from any such config: for memory
arithmetic (meta device) and for timing the real size (``benchmarks/bench_llava_gpu.py
--full_size``). Random weights: never for judging images.
"""

from __future__ import annotations

from typing import Any

import torch

PINPOINTS = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]
IMAGE_SIZE = 336
PATCH_SIZE = 14
# Published token ids of llava-v1.6-vicuna-7b-hf: <image> after Vicuna's 32,000 tokens.
IMAGE_TOKEN_INDEX = 32000


def llava_7b_config(
    image_token_index: int = IMAGE_TOKEN_INDEX,
    pad_token_id: int = 0,
    bos_token_id: int = 1,
    eos_token_id: int = 2,
    text: dict[str, Any] | None = None,
    vision: dict[str, Any] | None = None,
) -> Any:
    """``LlavaNextConfig`` of llava-hf/llava-v1.6-vicuna-7b-hf, written out by hand.

    ``text`` and ``vision`` override fields of the Llama and CLIP configs (e.g. a tiny width
    for tests, keeping the real image settings); token ids may be set to fit another tokenizer.
    """
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaNextConfig

    text_kwargs: dict[str, Any] = {
        "vocab_size": 32064, "hidden_size": 4096, "intermediate_size": 11008,
        "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
        "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "tie_word_embeddings": False,
        "pad_token_id": pad_token_id, "bos_token_id": bos_token_id,
        "eos_token_id": eos_token_id,
    }  # fmt: skip
    vision_kwargs: dict[str, Any] = {
        "hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24,
        "num_attention_heads": 16, "image_size": IMAGE_SIZE, "patch_size": PATCH_SIZE,
        "projection_dim": 768,
    }  # fmt: skip
    text_kwargs.update(text or {})
    vision_kwargs.update(vision or {})
    return LlavaNextConfig(
        vision_config=CLIPVisionConfig(**vision_kwargs),
        text_config=LlamaConfig(**text_kwargs),
        image_token_index=image_token_index,
        projector_hidden_act="gelu",
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        image_grid_pinpoints=PINPOINTS,
        tie_word_embeddings=False,
    )


def full_size_processor(tokenizer: Any | None = None) -> Any:
    """``LlavaNextProcessor`` with the published image settings of LLaVA-1.6 (resize to 336 on
    the short side, 336 px crops, the anyres pinpoints, CLIP mean/std, patch 14, CLS dropped).

    ``tokenizer`` defaults to the tiny in-memory one (it has the ``<image>`` token).
    """
    from transformers import LlavaNextImageProcessor, LlavaNextProcessor

    from LLaVA_Experiments.tiny_model import tiny_tokenizer

    image_processor = LlavaNextImageProcessor(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        image_grid_pinpoints=PINPOINTS,
    )  # fmt: skip
    return LlavaNextProcessor(
        image_processor=image_processor, tokenizer=tokenizer or tiny_tokenizer(),
        patch_size=PATCH_SIZE, vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )  # fmt: skip


def config_for_tokenizer(tokenizer: Any, **overrides: Any) -> Any:
    """:func:`llava_7b_config` with the token ids of ``tokenizer`` (its ``<image>``, pad, bos
    and eos), so the model finds the image tokens that processor inserts."""
    return llava_7b_config(
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **overrides,
    )


def build_random_llava(
    config: Any, dtype: torch.dtype = torch.bfloat16, device: str | torch.device = "meta",
    seed: int = 0,
) -> Any:  # fmt: skip
    """``LlavaNextForConditionalGeneration`` with random weights, created directly on
    ``device`` in ``dtype`` (on ``meta``: shapes only, no storage), in eval mode."""
    from transformers import LlavaNextForConditionalGeneration

    torch.manual_seed(seed)
    with torch.device(device):
        model = LlavaNextForConditionalGeneration._from_config(config, dtype=dtype)
    return model.eval()
