"""Time one LoRA training step and one explanation of the LLaVA explainer, with peak memory.

Runs the real code paths (``LLaVA_Experiments.finetune_lora.train`` and
``LLaVA_Experiments.explain.explain_rows``) on the tiny random LLaVA-NeXT of
``LLaVA_Experiments.tiny_model``, built into a temporary folder, with a few generated images and
conversations. On CUDA it runs in bfloat16 (float16 where the GPU lacks bf16) and reports peak
GPU memory (``torch.cuda.max_memory_allocated``, reset before each part); without a GPU it runs
on the CPU in float32 and reports peak resident memory instead. The model is tiny and random:
the numbers show that the GPU/bf16 path works and what it costs on a toy, not what the 7B model
needs (see benchmarks/llava_memory_estimate.py for that).

python benchmarks/bench_llava_gpu.py [--device cuda|cpu] [--dtype bfloat16|float16|float32]
"""

from __future__ import annotations

import argparse
import gc
import math
import resource
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from datagen.manifest import ManifestRow
from LLaVA_Experiments.explain import explain_rows
from LLaVA_Experiments.finetune_lora import TrainConfig, train
from LLaVA_Experiments.model import (
    QUESTION,
    add_dtype_option,
    load_adapter,
    load_model,
    resolve_dtype,
    user_text,
)
from LLaVA_Experiments.tiny_model import build_tiny_llava

# (height, width): square and both anyres orientations of the tiny model's pinpoints
IMAGE_SIZES = ((16, 16), (8, 16), (16, 8), (12, 12))
REPLIES = (
    "smooth texture and noise edges\nAnswer: fake",
    "lighting hands eyes\nAnswer: real",
)


def write_inputs(root: Path, seed: int = 0) -> tuple[list[dict[str, Any]], ManifestRow]:
    """Random images under ``root`` with one LLaVA JSON conversation each, plus a test row."""
    rng = np.random.default_rng(seed)
    records = []
    for index, (height, width) in enumerate(IMAGE_SIZES):
        rel = f"train/toy/{index}.png"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(root / rel)
        records.append(
            {
                "id": f"toy-{index}",
                "image": rel,
                "conversations": [
                    {"from": "human", "value": user_text(QUESTION)},
                    {"from": "gpt", "value": REPLIES[index % 2]},
                ],
            }
        )
    rel = "val/toy/0.png"
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(root / rel)
    return records, ManifestRow(rel, 1, "toy", "val", "diffusion")


def _status_kb(field: str) -> float | None:
    status = Path("/proc/self/status")
    if not status.exists():
        return None
    for line in status.read_text().splitlines():
        if line.startswith(f"{field}:"):
            return float(line.split()[1])
    return None


def reset_peak(device: torch.device) -> bool:
    """Reset the peak-memory counter; False where it cannot be reset (then it counts from the
    start of the process)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return True
    try:  # Linux: writing 5 to clear_refs resets VmHWM to the current RSS
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def memory_mb(device: torch.device) -> tuple[float, float]:
    """(current, peak) MB: GPU memory allocated by torch on CUDA, resident memory on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return (
            torch.cuda.memory_allocated(device) / 2**20,
            torch.cuda.max_memory_allocated(device) / 2**20,
        )
    current = _status_kb("VmRSS")
    peak = _status_kb("VmHWM")
    if peak is None:  # not Linux: ru_maxrss (kB on Linux/BSD) cannot be reset
        peak = float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return (current or 0.0) / 1024, peak / 1024


def measure(device: torch.device, work: Callable[[], Any]) -> tuple[Any, dict[str, float]]:
    """Run ``work``; its wall time, memory before and peak memory during it."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    was_reset = reset_peak(device)
    before, _ = memory_mb(device)
    start = time.perf_counter()
    result = work()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    _, peak = memory_mb(device)
    return result, {"seconds": seconds, "before_mb": before, "peak_mb": peak, "reset": was_reset}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="cuda, cuda:N or cpu (default: cuda if any)")
    add_dtype_option(parser)
    parser.add_argument("--lora_r", type=int, default=8)
    parser.add_argument("--max_new_tokens", type=int, default=16)
    args = parser.parse_args()

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: no CUDA GPU visible to torch")
    dtype = resolve_dtype(args.dtype, device)
    dtype_name = str(dtype).removeprefix("torch.")
    if device.type == "cuda":
        where = f"GPU {torch.cuda.get_device_name(device)}"
        memory_kind = "peak GPU memory allocated by torch (max_memory_allocated)"
    else:
        where = "CPU" + (" (no GPU found)" if not torch.cuda.is_available() else "")
        memory_kind = "peak resident memory of this process (VmHWM)"
    print(
        f"LLaVA explainer on the TINY RANDOM LLaVA-NeXT: {where}, {dtype_name}; "
        f"torch {torch.__version__}, threads {torch.get_num_threads()}"
    )
    if device.type == "cpu":
        print("no CUDA run: these are CPU numbers; run on a GPU machine to check the bf16 path")
    print(f"memory: {memory_kind}")

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        start = time.perf_counter()
        folder = build_tiny_llava(tmp / "model")
        records, test_row = write_inputs(tmp / "data")
        print(
            f"tiny model and {len(records)} conversations written in "
            f"{time.perf_counter() - start:.1f} s"
        )

        (model, processor), load = measure(
            device, lambda: load_model(str(folder), str(device), dtype=dtype)
        )
        processor.tokenizer.padding_side = "right"  # as finetune_lora does
        config = TrainConfig(
            lora_r=args.lora_r, lora_alpha=2 * args.lora_r, max_steps=1,
            grad_accum=len(records), max_length=512,
        )  # fmt: skip
        adapter = tmp / "adapter"
        (trained, losses), step = measure(
            device,
            lambda: train(model, processor, records, tmp / "data", adapter, config),
        )
        loss = losses[0] if losses else float("nan")
        saved = load_file(adapter / "adapter_model.safetensors")
        lora_dtype = next(t.dtype for n, t in saved.items() if "lora_A" in n)
        del model, trained
        (model, processor), _ = measure(
            device, lambda: load_model(str(folder), str(device), dtype=dtype)
        )
        model = load_adapter(model, adapter)
        model.eval()
        explained, explain = measure(
            device,
            lambda: explain_rows(
                model, processor, tmp / "data", [test_row], batch_size=1,
                max_new_tokens=args.max_new_tokens, force_answer=True,
            ),
        )  # fmt: skip
    record = explained[0]
    prob = record["prob_fake"]

    print(f"\n{'part':<44} {'wall s':>8} {'before MB':>10} {'peak MB':>9}")
    parts = (
        ("load model + processor", load),
        (f"LoRA step (r {args.lora_r}, {len(records)} conversations accumulated)", step),
        (f"explain 1 image ({args.max_new_tokens} new tokens + P(fake))", explain),
    )
    for name, m in parts:
        note = "" if m["reset"] else "  (peak since process start: could not reset)"
        print(f"{name:<44} {m['seconds']:>8.3f} {m['before_mb']:>10.1f} {m['peak_mb']:>9.1f}{note}")
    print(
        f"\nexplain / train step time: {explain['seconds'] / step['seconds']:.2f}x; "
        f"train step peak - before: {step['peak_mb'] - step['before_mb']:.1f} MB; "
        f"explain peak - before: {explain['peak_mb'] - explain['before_mb']:.1f} MB"
    )
    print(f"{dtype_name} training loss {loss:.4f}: finite {'yes' if math.isfinite(loss) else 'NO'}")
    print(f"LoRA weights trained and saved in {str(lora_dtype).removeprefix('torch.')}")
    in_range = 0.0 <= prob <= 1.0
    print(
        f"explanation P(fake) = {prob:.4f}: in [0, 1] {'yes' if in_range else 'NO'} "
        f"(verdict {record['verdict']}, forced {record['forced']}, "
        f"{len(record['generated'].split())} words generated)"
    )
    print("(random weights: the loss, verdict and probability themselves mean nothing)")


if __name__ == "__main__":
    main()
