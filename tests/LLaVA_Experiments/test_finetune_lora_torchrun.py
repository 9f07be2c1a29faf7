"""``torchrun -m LLaVA_Experiments.finetune_lora`` on 2 CPU processes against one process with
the same global step (``--grad_accum 4``: 2 conversations per rank and step). LoRA dropout is
off (each rank would draw its own masks); tolerance 1e-5 on the adapter's weights (float sums
in another order over 2 steps)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from tests.LLaVA_Experiments.test_finetune_lora import _records, _write


def finetune(
    tmp_path: Path, common: list[str], name: str, ranks: int
) -> subprocess.CompletedProcess:
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}"]
    command = [
        sys.executable, *(launcher if ranks > 1 else []), "-m", "LLaVA_Experiments.finetune_lora",
        *common, "--output_dir", str(tmp_path / name),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def test_lora_on_two_ranks_equals_one_process(
    tiny_llava: Path, tiny_data: Path, tmp_path: Path
) -> None:
    data = _write(tmp_path / "train.json", _records(tiny_data, 8))
    common = ["--model", str(tiny_llava), "--data", str(data), "--data_root", str(tiny_data),
              "--lora_r", "4", "--lora_alpha", "8", "--lora_dropout", "0", "--lr", "1e-2",
              "--max_steps", "3", "--grad_accum", "4"]  # fmt: skip
    two = finetune(tmp_path, common, "two", ranks=2)
    assert two.returncode == 0, two.stdout[-2000:] + two.stderr[-3000:]
    one = finetune(tmp_path, [*common, "--device", "cpu"], "one", ranks=1)
    assert one.returncode == 0, one.stderr[-3000:]
    got = load_file(tmp_path / "two" / "adapter_model.safetensors")
    want = load_file(tmp_path / "one" / "adapter_model.safetensors")
    assert got.keys() == want.keys()
    trained = [k for k in want if "lora_B" in k]  # LoRA's B starts at zero: moved by training
    assert trained and max(float(want[k].abs().max()) for k in trained) > 1e-3
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=1e-5, msg=key)
    info_two = json.loads((tmp_path / "two" / "training_info.json").read_text())
    info_one = json.loads((tmp_path / "one" / "training_info.json").read_text())
    assert info_two["steps"] == info_one["steps"] == 2  # 8 conversations, 4 per step
    for a, b in zip(info_two["losses"], info_one["losses"], strict=True):
        assert abs(a - b) < 1e-5
    # AdamW and clipping hide a constant factor in the gradient: its norm does not
    assert len(info_one["grad_norms"]) == 2
    for a, b in zip(info_two["grad_norms"], info_one["grad_norms"], strict=True):
        assert abs(a - b) <= 1e-4 * b


def test_grad_accum_must_divide_by_the_ranks(tiny_data: Path, tmp_path: Path) -> None:
    data = _write(tmp_path / "train.json", _records(tiny_data, 4))
    common = ["--data", str(data), "--data_root", str(tiny_data), "--grad_accum", "3"]
    done = finetune(tmp_path, common, "odd", ranks=2)
    assert done.returncode != 0
    assert "--grad_accum 3: under torchrun each step's conversations are split" in done.stderr
