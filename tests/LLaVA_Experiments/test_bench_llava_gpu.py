"""benchmarks/bench_llava_gpu.py --full_size: its code path run at tiny width with the real image
processing (so a 256x256 image costs the real 1,176 tokens), and its refusal to start on the CPU.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_llava_gpu.py"
TINY_TEXT = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": 128}  # fmt: skip
TINY_VISION = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
               "num_attention_heads": 4, "projection_dim": 32}  # fmt: skip


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("bench_llava_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_full_size_refuses_the_cpu_at_once(bench: ModuleType, monkeypatch, capsys) -> None:
    from LLaVA_Experiments import full_size

    def no_build(*args, **kwargs):
        raise AssertionError("must not build a model")

    monkeypatch.setattr(full_size, "build_random_llava", no_build)
    assert bench.main(["--full_size", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "needs a CUDA GPU" in err and "--allow_cpu" in err


@pytest.fixture
def hf_logging_restored() -> Iterator[None]:
    """The benchmark quiets transformers' logging and progress bars; put them back after."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    yield
    hf_logging.set_verbosity(verbosity)
    hf_logging.enable_progress_bar()


def test_full_size_path_at_tiny_width(
    bench: ModuleType, monkeypatch, capsys, hf_logging_restored: None
) -> None:
    """``--full_size`` end to end with the real image processing and a tiny-width model."""
    from LLaVA_Experiments import full_size

    config = full_size.config_for_tokenizer(
        full_size.full_size_processor().tokenizer, text=TINY_TEXT, vision=TINY_VISION
    )
    published = full_size.llava_7b_config()
    assert config.image_grid_pinpoints == published.image_grid_pinpoints
    assert config.vision_config.image_size == 336 and config.vision_config.patch_size == 14
    assert published.text_config.vocab_size == 32064
    monkeypatch.setattr(full_size, "config_for_tokenizer", lambda tokenizer: config)
    monkeypatch.setattr(bench, "readme_estimate", lambda *a: {"train": 19.4, "explain": 16.5})
    results = []
    real_run = bench.run_full_size
    monkeypatch.setattr(bench, "run_full_size", lambda *a, **k: results.append(real_run(*a, **k))
                        or results[0])  # fmt: skip
    argv = ["--full_size", "--device", "cpu", "--allow_cpu", "--dtype", "float32", "--steps",
            "2", "--lora_r", "4", "--answer_tokens", "20", "--explain_batch", "2",
            "--max_new_tokens", "2"]  # fmt: skip
    assert bench.main(argv) == 0
    result = results[0]
    assert (result["image_tokens"], result["crops"]) == (1176, 3)
    assert 1176 + 20 < result["conversation_tokens"] < 1176 + 20 + 100
    assert len(result["step_seconds"]) == 2 and all(s > 0 for s in result["step_seconds"])
    assert len(result["losses"]) == 2 and all(math.isfinite(x) for x in result["losses"])
    assert [r["path"] for r in result["explained"]] == ["val/full/0.png", "val/full/1.png"]
    assert all(0.0 <= r["prob_fake"] <= 1.0 for r in result["explained"])
    out = capsys.readouterr().out
    assert "a 256x256 image = 1176 image tokens (3 crops of 336 px)" in out
    assert "time per LoRA step: first" in out and "finite: yes" in out
    assert "19.40" in out and "16.50" in out  # the estimate beside the measurement
