"""``torchrun -m LLaVA_Experiments.make_train_data`` on 2 CPU processes: each rank asks about
its share of the images, rank 0 merges the parts into the files one process writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def make_data(tmp_path: Path, model: Path, data: Path, out: Path, ranks: int) -> str:
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}"]
    command = [
        sys.executable, *(launcher if ranks > 1 else []), "-m", "LLaVA_Experiments.make_train_data",
        "--model", str(model), "--data_root", str(data), "--out", str(out),
        "--per_source", "3", "--max_new_tokens", "3", "--batch_size", "2",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


def test_two_ranks_write_what_one_process_writes(
    tiny_llava: Path, tiny_data: Path, tmp_path: Path
) -> None:
    two, one = tmp_path / "two" / "gen.json", tmp_path / "one" / "gen.json"
    printed = make_data(tmp_path, tiny_llava, tiny_data, two, ranks=2)
    make_data(tmp_path, tiny_llava, tiny_data, one, ranks=1)
    assert json.loads(two.read_text()) == json.loads(one.read_text())
    dropped = two.with_name("gen.dropped.json")
    kept = json.loads(two.read_text())
    gone = json.loads(dropped.read_text()) if dropped.exists() else []
    assert len(kept) + len(gone) == 9  # 3 sources x 3 images, each kept or dropped once
    if gone:
        assert gone == json.loads(one.with_name("gen.dropped.json").read_text())
    assert sorted(p.name for p in two.parent.iterdir()) == sorted(
        p.name for p in one.parent.iterdir()
    )  # the rank parts are gone
    summary = json.loads(printed.strip().splitlines()[-1])
    assert summary["written"] == len(kept) and summary["dropped_wrong_answer"] == len(gone)
