"""benchmarks/bench_ddp.py on a few random images, 1 against 2 gloo processes: one line per
case, and each printed ratio is the quotient of the printed rates."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.benchmarks.scripts import BENCHMARKS, NUMBER, assert_quotient


def test_tiny_run_prints_consistent_figures() -> None:
    """Run as a script: its ranks are spawned processes that import it as their main module."""
    argv = ["--images", "16", "--batch_size", "8", "--size", "32", "--epochs", "1"]
    command = [sys.executable, str(BENCHMARKS / "bench_ddp.py"), *argv, "--threads", "2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0] == "cpu, 2 threads in all, global batch 8, 16 images x 1 epochs"
    for line, case in zip(lines[1:], ("backbone", "head"), strict=True):
        found = re.fullmatch(
            rf"{case} \(.+\): 1 process ({NUMBER}) img/s \| 2 processes ({NUMBER}) img/s \| "
            rf"ratio ({NUMBER})",
            line,
        )
        assert found, line
        single, multi, ratio = found.groups()
        assert_quotient(ratio, multi, single)
