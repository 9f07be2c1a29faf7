"""Fast checks of benchmarks/llava_memory_estimate.py: the 7B config, image-token counts from
the hand-configured processor, and the memory arithmetic (the meta model is not built here)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

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


def test_config_has_the_published_values(estimate: ModuleType) -> None:
    config = estimate.llava_config()
    text, vision = config.text_config, config.vision_config
    assert (text.hidden_size, text.intermediate_size, text.num_hidden_layers) == (4096, 11008, 32)
    assert (text.num_attention_heads, text.vocab_size) == (32, 32064)
    assert (vision.hidden_size, vision.num_hidden_layers, vision.image_size) == (1024, 24, 336)
    assert vision.patch_size == 14 and config.vision_feature_layer == -2
    assert config.image_grid_pinpoints[2] == [672, 672]


def test_image_tokens_of_256_px_and_the_largest_case(estimate: ModuleType) -> None:
    processor = estimate.build_processor()
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
