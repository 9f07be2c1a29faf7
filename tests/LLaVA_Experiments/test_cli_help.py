"""``--help`` of every LLaVA script parses flags only: torch, transformers and sklearn load after
it (DESIGN 10), so the help comes back in a moment."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "sklearn")


@pytest.mark.parametrize("module", ["make_train_data", "finetune_lora", "explain", "tiny_model"])
def test_help_does_not_import_torch(module: str) -> None:
    code = (
        f"import sys, runpy; sys.argv = ['x', '--help']\n"
        f"try:\n    runpy.run_module('LLaVA_Experiments.{module}', run_name='__main__')\n"
        f"except SystemExit:\n    pass\n"
        f"print(sorted(name for name in {HEAVY!r} if name in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "usage:" in done.stdout, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stderr[-2000:]
