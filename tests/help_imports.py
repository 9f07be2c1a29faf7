"""Run a script's ``--help`` in a fresh interpreter and say which heavy libraries it loaded."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence

HEAVY = ("torch", "transformers", "sklearn")


def heavy_modules_loaded_by_help(module: str, heavy: Sequence[str] = HEAVY) -> list[str]:
    """The names in ``heavy`` imported by ``python -m module --help``; fails without a usage."""
    code = (
        f"import sys, runpy; sys.argv = ['x', '--help']\n"
        f"try:\n    runpy.run_module({module!r}, run_name='__main__')\n"
        f"except SystemExit:\n    pass\n"
        f"import json; print(json.dumps([n for n in {tuple(heavy)!r} if n in sys.modules]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "usage:" in done.stdout, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
