"""``torchrun -m LLaVA_Experiments.explain`` on 2 CPU processes: each rank explains its share of
the images, rank 0 writes the files one process writes, with the same explanations."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def explain(tmp_path: Path, model: Path, data: Path, name: str, ranks: int) -> None:
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}"]
    command = [
        sys.executable, *(launcher if ranks > 1 else []), "-m", "LLaVA_Experiments.explain",
        "--model", str(model), "--data_root", str(data), "--name", name,
        "--results_dir", str(tmp_path), "--max_new_tokens", "4", "--batch_size", "2",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]


def test_two_ranks_explain_as_one_process(
    tiny_llava: Path, tiny_data: Path, tmp_path: Path
) -> None:
    explain(tmp_path, tiny_llava, tiny_data, "two", ranks=2)
    explain(tmp_path, tiny_llava, tiny_data, "one", ranks=1)
    two = json.loads((tmp_path / "two" / "explanations.json").read_text())["images"]
    one = json.loads((tmp_path / "one" / "explanations.json").read_text())["images"]
    assert len(two) == len(one) == 9  # 9 images: 5 on rank 0, 4 on rank 1
    for got, want in zip(two, one, strict=True):
        assert got["path"] == want["path"] and got["answer"] == want["answer"]
        assert got["verdict"] == want["verdict"]
        assert got["prob_fake"] == pytest.approx(want["prob_fake"], abs=1e-5)
    assert (tmp_path / "two" / "metrics.json").is_file()
    assert not list((tmp_path / "two").glob("*.partial.jsonl*"))  # every rank's journal gone
