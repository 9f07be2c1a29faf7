"""``--help`` of every LLaVA script parses flags only: torch, transformers and sklearn load after
it (DESIGN 10), so the help comes back in a moment."""

from __future__ import annotations

import pytest

from tests.help_imports import heavy_modules_loaded_by_help


@pytest.mark.parametrize("module", ["make_train_data", "finetune_lora", "explain", "tiny_model"])
def test_help_does_not_import_torch(module: str) -> None:
    assert heavy_modules_loaded_by_help(f"LLaVA_Experiments.{module}") == []
