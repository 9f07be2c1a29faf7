"""Checks of benchmarks/llava_memory_estimate.py: the 7B config, image-token counts from the
hand-configured processor, the memory arithmetic, and which layers --load_in_4bit quantises in
the real 7B architecture (built once on the meta device, no weights)."""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "llava_memory_estimate.py"


@pytest.fixture(scope="module")
def estimate() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("llava_memory_estimate", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_config_has_the_published_values() -> None:
    from LLaVA_Experiments.full_size import llava_7b_config

    config = llava_7b_config()
    text, vision = config.text_config, config.vision_config
    assert (text.hidden_size, text.intermediate_size, text.num_hidden_layers) == (4096, 11008, 32)
    assert (text.num_attention_heads, text.vocab_size) == (32, 32064)
    assert (vision.hidden_size, vision.num_hidden_layers, vision.image_size) == (1024, 24, 336)
    assert vision.patch_size == 14 and config.vision_feature_layer == -2
    assert config.image_grid_pinpoints[2] == [672, 672]


def test_image_tokens_of_256_px_and_the_largest_case(estimate: ModuleType) -> None:
    from LLaVA_Experiments.full_size import full_size_processor

    processor = full_size_processor()
    counts = estimate.image_token_counts(processor, [[256, 256], [672, 672], [1008, 336]])
    # 24x24 base patches + the unpadded anyres grid with a newline per row
    assert counts == [576 + 24 * 24 + 24, 576 + 48 * 48 + 48, 576 + 72 * 24 + 72]


def test_memory_arithmetic(estimate: ModuleType) -> None:
    counts = estimate.Counts(
        total=1000, quantized=800, lora=10, projector=5,
        layers=2, hidden=8, intermediate=16, vocab=32,
    )  # fmt: skip
    assert estimate.weight_bytes(counts, four_bit=False) == 2000
    assert estimate.weight_bytes(counts, four_bit=True) == pytest.approx(800 * 0.51587 + 400, 1e-4)
    rows = {r.name.split(",")[0]: r for r in estimate.estimates(counts, 20, 3, 2, 5, 7)}
    bf16 = rows["LoRA training bf16"]
    assert bf16.trainable == bf16.grads == 4 * (10 + 5) and bf16.adamw == 2 * bf16.grads
    qlora = rows["LoRA training nf4 (QLoRA)"]
    assert qlora.weights == pytest.approx(800 * estimate.NF4_BYTES + 4 * 200)
    assert rows["inference bf16"].fixed == 2000 and rows["inference bf16"].activations > 0


@pytest.fixture(scope="module")
def meta_7b(estimate: ModuleType) -> Any:
    """llava-v1.6-vicuna-7b built on the meta device from its config (no weights)."""
    return estimate.build_meta_model()


def test_four_bit_keeps_vision_tower_projector_and_lm_head_16_bit(meta_7b: Any) -> None:
    """transformers' own matcher over the real module names: what load_model's skip list keeps."""
    from transformers.quantizers.base import HfQuantizer
    from transformers.quantizers.quantizers_utils import should_convert_module

    from LLaVA_Experiments.four_bit import FOUR_BIT_SKIP

    # the skip list as the bitsandbytes quantizer builds it from llm_int8_skip_modules
    patterns = HfQuantizer.get_modules_to_not_convert(
        meta_7b, list(FOUR_BIT_SKIP), meta_7b._keep_in_fp32_modules
    )
    linears = [n for n, m in meta_7b.named_modules() if type(m) is torch.nn.Linear]
    kept = {n for n in linears if not should_convert_module(n, patterns)}
    vision = [n for n in linears if n.startswith("model.vision_tower.")]
    projector = [n for n in linears if n.startswith("model.multi_modal_projector.")]
    decoder = [n for n in linears if re.match(r"model\.language_model\.layers\.\d+\.", n)]
    assert (len(vision), len(projector), len(decoder)) == (24 * 6, 2, 32 * 7)
    assert sorted(linears) == sorted([*vision, *projector, *decoder, "lm_head"])
    assert {*vision, *projector, "lm_head"} <= kept  # every one stays 16-bit
    assert not kept & set(decoder)  # every decoder-layer Linear becomes nf4


def test_memory_estimate_counts_the_layers_the_code_quantizes(
    estimate: ModuleType, meta_7b: Any
) -> None:
    from LLaVA_Experiments.four_bit import four_bit_plan

    quantized, kept = four_bit_plan(meta_7b)
    assert all(n.startswith("model.language_model.layers.") for n in quantized)
    assert len(quantized) == 224 and len(kept) == 24 * 6 + 2 + 1
    modules = dict(meta_7b.named_modules())
    counts = estimate.count_params(meta_7b)
    assert counts.quantized == sum(modules[n].weight.numel() for n in quantized)
    assert counts.quantized == 32 * (4 * 4096 * 4096 + 3 * 4096 * 11008)


def test_real_bitsandbytes_quantizer_agrees(estimate: ModuleType) -> None:
    """transformers' own 4-bit quantizer (bitsandbytes, a test dependency) replaces exactly the
    layers four_bit_plan names (on the meta model, before any weight is loaded)."""
    import bitsandbytes as bnb
    from transformers import BitsAndBytesConfig
    from transformers.quantizers.auto import AutoHfQuantizer

    from LLaVA_Experiments.four_bit import FOUR_BIT_SKIP, four_bit_plan

    model = estimate.build_meta_model()
    planned, _ = four_bit_plan(model)
    config = BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16, bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True, llm_int8_skip_modules=list(FOUR_BIT_SKIP),
    )  # fmt: skip
    quantizer = AutoHfQuantizer.from_config(config, pre_quantized=False)
    quantizer._process_model_before_weight_loading(model, device_map={"": 0})
    replaced = [n for n, m in model.named_modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert sorted(replaced) == sorted(planned)
