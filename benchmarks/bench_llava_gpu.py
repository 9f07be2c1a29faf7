"""Time LoRA training steps and an explanation of the LLaVA explainer, with peak memory.

Runs the real code paths (``LLaVA_Experiments.training.train`` and
``LLaVA_Experiments.explanations.explain_rows``) with generated images and conversations.

Default: the tiny random LLaVA-NeXT of ``LLaVA_Experiments.tiny_model``, built into a temporary
folder; one step. It shows that the GPU/bf16 path works and what it costs on a toy.

``--full_size``: the real llava-v1.6-vicuna-7b architecture (``LLaVA_Experiments.full_size``:
config written out in code, the published image processing, an in-memory tokenizer) with
RANDOM bf16 weights created on the GPU, nothing downloaded; a few LoRA steps (r 128, one
256x256 conversation each) and one explanation batch of 256x256 images, with time per step
and peak GPU memory against the README's estimate (benchmarks/llava_memory_estimate.py). It
needs a CUDA GPU with about 24 GB free; on the CPU it stops at once unless --allow_cpu.

On CUDA it runs in bfloat16 (float16 where the GPU lacks bf16) and reports peak GPU memory
(``torch.cuda.max_memory_allocated``, reset before each part); on the CPU, float32 and peak
resident memory.

python benchmarks/bench_llava_gpu.py [--device cuda|cpu] [--dtype bfloat16|float16|float32]
python benchmarks/bench_llava_gpu.py --full_size [--steps 3] [--explain_batch 4]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import math
import os
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
from LLaVA_Experiments.adapters import load_adapter
from LLaVA_Experiments.conversations import single_turn
from LLaVA_Experiments.explanations import explain_rows
from LLaVA_Experiments.loading import load_model, resolve_dtype
from LLaVA_Experiments.options import add_dtype_option
from LLaVA_Experiments.prompts import QUESTION
from LLaVA_Experiments.recipe import TrainConfig
from LLaVA_Experiments.tiny_model import build_tiny_llava
from LLaVA_Experiments.training import train

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
        records.append(single_turn(f"toy-{index}", rel, QUESTION, REPLIES[index % 2]))
    rel = "val/toy/0.png"
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(root / rel)
    return records, ManifestRow(rel, 1, "toy", "val", "diffusion")


def _status_kb(field: str) -> float | None:
    """A ``kB`` field of ``/proc/self/status`` (None where there is none)."""
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


def _answer_text(tokenizer: Any, words: int, verdict: str = "fake") -> str:
    """An assistant reply of ``words`` vocabulary words plus ``Answer: verdict`` (with the
    word-level tokenizer: one token per word)."""
    vocab = [w for w in tokenizer.get_vocab() if w.isalpha() and w.islower()]
    vocab.sort()
    body = " ".join(vocab[i % len(vocab)] for i in range(max(0, words)))
    return f"{body}\nAnswer: {verdict}" if body else f"Answer: {verdict}"


def write_full_size_inputs(
    root: Path, tokenizer: Any, count: int, answer_tokens: int, test_images: int, seed: int = 0
) -> tuple[list[dict[str, Any]], list[ManifestRow]]:
    """``count`` 256x256 training images with one conversation each (answers of about
    ``answer_tokens`` tokens) and ``test_images`` 256x256 test rows."""
    rng = np.random.default_rng(seed)
    records = []
    for index in range(count):
        rel = f"train/full/{index}.png"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(root / rel)
        reply = _answer_text(tokenizer, answer_tokens - 3, ("real", "fake")[index % 2])
        records.append(single_turn(f"full-{index}", rel, QUESTION, reply))
    rows = []
    for index in range(test_images):
        rel = f"val/full/{index}.png"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(root / rel)
        rows.append(ManifestRow(rel, index % 2, "full", "val", "diffusion"))
    return records, rows


def readme_estimate(
    image_tokens: int, crops: int, batch: int, new_tokens: int, answer_tokens: int
) -> dict[str, float]:
    """The README's GiB totals (bf16 rows of benchmarks/llava_memory_estimate.py) for these
    sizes, computed on the meta-device 7B model (no memory used)."""
    if str(Path(__file__).parent) not in sys.path:
        sys.path.insert(0, str(Path(__file__).parent))
    import llava_memory_estimate as estimate

    model = estimate.build_meta_model(torch.bfloat16)
    counts = estimate.count_params(model)
    counts.lora, counts.projector, _, _ = estimate.lora_params(model)
    rows = estimate.estimates(counts, image_tokens, crops, batch, new_tokens, answer_tokens)
    totals = {r.name: (r.fixed + r.activations) / estimate.GIB for r in rows}
    return {
        "train": totals["LoRA training bf16"],
        "explain": totals[f"inference bf16, batch {batch}"],
    }


def _full_size_sizes(processor: Any, record: dict[str, Any]) -> dict[str, int]:
    """Image tokens and crops of a 256x256 image, and the tokens of the conversation ``record``
    on one, with the real image processing."""
    from LLaVA_Experiments.encoding import conversation_length, image_token_count

    blank = processor.image_processor(images=[Image.new("RGB", (256, 256))], return_tensors="pt")
    return {
        "image_tokens": image_token_count(processor, 256, 256),
        "crops": int(blank["pixel_values"].shape[1]),
        "conversation_tokens": conversation_length(processor, record, (256, 256)),
    }


def _timed_training(
    device: torch.device,
    model: Any,
    processor: Any,
    records: list[dict[str, Any]],
    work: Path,
    config: TrainConfig,
) -> dict[str, Any]:
    """Train LoRA on ``records`` with the time of every step; the trained model, the losses
    (all steps, and per step with None where skipped) and the measurement of the whole."""
    marks: list[float] = []
    step_losses: list[float | None] = []

    def on_step(step: int, loss: float | None) -> None:
        """Mark the end of a step (after the GPU finished it) and its loss."""
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        marks.append(time.perf_counter())
        step_losses.append(loss)

    def run_training() -> Any:
        """The training, with the start mark of the first step."""
        marks.append(time.perf_counter())
        return train(
            model, processor, records, work / "data", work / "adapter", config, on_step=on_step
        )

    (trained, losses), training = measure(device, run_training)
    return {
        "trained": trained,
        "training": training,
        "step_seconds": [b - a for a, b in itertools.pairwise(marks)],
        "losses": losses,
        "step_losses": step_losses,
    }


def run_full_size(
    config: Any,
    device: torch.device,
    dtype: torch.dtype,
    work: Path,
    steps: int = 3,
    lora_r: int = 128,
    answer_tokens: int = 300,
    explain_batch: int = 4,
    max_new_tokens: int = 256,
) -> dict[str, Any]:
    """Build a random-weight LLaVA-NeXT from ``config`` on ``device``, train ``steps`` LoRA
    steps (one 256x256 conversation each) and explain ``explain_batch`` 256x256 images.

    Returns timings (s), peak memory (MB) and sizes. ``config`` must use the token ids of the
    tiny tokenizer (``LLaVA_Experiments.full_size.config_for_tokenizer``).
    """
    from LLaVA_Experiments.full_size import build_random_llava, full_size_processor

    processor = full_size_processor()
    records, rows = write_full_size_inputs(
        work / "data", processor.tokenizer, steps, answer_tokens, explain_batch
    )
    sizes = _full_size_sizes(processor, records[0])
    model, build = measure(device, lambda: build_random_llava(config, dtype, device))
    processor.tokenizer.padding_side = "right"  # as finetune_lora does
    train_config = TrainConfig(
        lora_r=lora_r, lora_alpha=2 * lora_r, max_steps=steps, grad_accum=1, max_length=2048,
    )  # fmt: skip
    training = _timed_training(device, model, processor, records, work, train_config)
    model = training.pop("trained")
    model.eval()
    explained, explain = measure(
        device,
        lambda: explain_rows(
            model, processor, work / "data", rows, batch_size=explain_batch,
            max_new_tokens=max_new_tokens, force_answer=True,
        ),
    )  # fmt: skip
    return {
        **sizes,
        "answer_tokens": answer_tokens,
        "build": build,
        **training,
        "explain": explain,
        "explained": explained,
        "parameters": sum(p.numel() for p in model.get_base_model().parameters()),
    }


def _print_full_size_header(device: torch.device, dtype: torch.dtype) -> None:
    """What runs where, and a warning when the GPU has less memory free than training needs."""
    gib = 2**30
    name = f"GPU {torch.cuda.get_device_name(device)}" if device.type == "cuda" else "CPU"
    print(
        f"llava-v1.6-vicuna-7b ARCHITECTURE with RANDOM {str(dtype).removeprefix('torch.')} "
        f"weights (nothing downloaded) on {name}; torch {torch.__version__}"
    )
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        print(f"GPU memory: {free / gib:.1f} GiB free of {total / gib:.1f} GiB")
        if free < 22 * gib:
            print("WARNING: the estimate for LoRA training is about 19.5 GiB plus CUDA overhead")


def _print_full_size_table(
    result: dict[str, Any], estimate: dict[str, float], args: argparse.Namespace,
    device: torch.device,
) -> None:  # fmt: skip
    """Sizes, then wall time, memory before and peak memory of each part beside the estimate."""
    unit = "GiB allocated by torch (max_memory_allocated)" if device.type == "cuda" else (
        "GiB resident (VmHWM)"
    )  # fmt: skip
    print(
        f"\n{result['parameters']:,} parameters; a 256x256 image = {result['image_tokens']} "
        f"image tokens ({result['crops']} crops of 336 px); training conversation "
        f"{result['conversation_tokens']} tokens (answer ~{result['answer_tokens']})"
    )
    print(f"peak memory: {unit}; README estimate: arithmetic, without CUDA overhead\n")
    print(f"{'part':<48} {'wall s':>8} {'before':>8} {'peak':>8} {'estimate':>9}")
    steps = result["step_seconds"]
    rows = [
        ("build the model (random weights)", result["build"], None),
        (f"LoRA training, {len(steps)} steps (r {args.lora_r or 128})", result["training"],
         estimate["train"]),
        (f"explain {args.explain_batch} images ({args.max_new_tokens} new tokens + P(fake))",
         result["explain"], estimate["explain"]),
    ]  # fmt: skip
    for label, m, est in rows:
        est_text = f"{est:>9.2f}" if est is not None else f"{'':>9}"
        print(
            f"{label:<48} {m['seconds']:>8.2f} {m['before_mb'] / 1024:>8.2f} "
            f"{m['peak_mb'] / 1024:>8.2f} {est_text}"
        )


def _print_full_size_checks(result: dict[str, Any]) -> bool:
    """Time per step, finite losses, probabilities in [0, 1]; whether the losses were finite."""
    steps = result["step_seconds"]
    later = steps[1:] or steps
    print(
        f"\ntime per LoRA step: first {steps[0]:.2f} s (with LoRA setup and warm-up), then "
        f"{sum(later) / len(later):.2f} s on average over {len(later)}"
    )
    losses = [f"{x:.3f}" if x is not None else "skipped" for x in result["step_losses"]]
    finite = all(x is not None and math.isfinite(x) for x in result["step_losses"])
    print(f"losses per step: {', '.join(losses)} (finite: {'yes' if finite else 'NO'})")
    probs = [r["prob_fake"] for r in result["explained"]]
    print(
        f"P(fake) of the {len(probs)} explained images in [0, 1]: "
        f"{'yes' if all(0 <= p <= 1 for p in probs) else 'NO'}"
    )
    print("(random weights: losses, verdicts and probabilities mean nothing)")
    return finite


def _full_size_main(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> int:
    """``--full_size``: the 7B architecture run, its measurements beside the estimate."""
    from LLaVA_Experiments.full_size import config_for_tokenizer
    from LLaVA_Experiments.tiny_model import tiny_tokenizer

    _print_full_size_header(device, dtype)
    config = config_for_tokenizer(tiny_tokenizer())
    with tempfile.TemporaryDirectory() as tmp_name:
        result = run_full_size(
            config, device, dtype, Path(tmp_name), steps=args.steps, lora_r=args.lora_r or 128,
            answer_tokens=args.answer_tokens, explain_batch=args.explain_batch,
            max_new_tokens=args.max_new_tokens,
        )  # fmt: skip
    print("estimating (meta device) ...")
    estimate = readme_estimate(
        result["image_tokens"], result["crops"], args.explain_batch, args.max_new_tokens,
        args.answer_tokens,
    )  # fmt: skip
    _print_full_size_table(result, estimate, args, device)
    return 0 if _print_full_size_checks(result) else 1


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's flags."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="cuda, cuda:N or cpu (default: cuda if any)")
    add_dtype_option(parser)
    parser.add_argument("--lora_r", type=int, default=None, help="default: 8 tiny, 128 full size")
    parser.add_argument("--max_new_tokens", type=int, default=None,
                        help="explanation length (default: 16 tiny, 256 full size)")  # fmt: skip
    parser.add_argument(
        "--full_size", action="store_true",
        help="the real 7B architecture with random weights (needs a CUDA GPU)",
    )  # fmt: skip
    parser.add_argument("--steps", type=int, default=3, help="--full_size: LoRA steps")
    parser.add_argument(
        "--answer_tokens", type=int, default=300, help="--full_size: tokens per training answer"
    )
    parser.add_argument(
        "--explain_batch", type=int, default=4, help="--full_size: images explained at once"
    )
    parser.add_argument(
        "--allow_cpu", action="store_true",
        help="--full_size on the CPU anyway (about 14 GB of RAM for the weights, very slow)",
    )  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    """Check the device and flags, quiet transformers, run the tiny or the full-size benchmark."""
    parser = build_parser()
    args = parser.parse_args(argv)

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: no CUDA GPU visible to torch")
    if args.full_size and device.type != "cuda" and not args.allow_cpu:
        print(
            "error: --full_size builds the 7B model (about 14 GB of bf16 weights plus the LoRA "
            "optimizer state) and needs a CUDA GPU: run it with --device cuda on a GPU machine "
            f"(here: {'no CUDA GPU is visible' if not torch.cuda.is_available() else 'cpu'}), or "
            "pass --allow_cpu to try the CPU anyway",
            file=sys.stderr,
        )
        return 2
    if args.steps < 1 or args.explain_batch < 1 or args.answer_tokens < 4:
        parser.error("--steps and --explain_batch must be >= 1, --answer_tokens >= 4")

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    dtype = resolve_dtype(args.dtype, device)
    if args.full_size:
        if args.max_new_tokens is None:
            args.max_new_tokens = 256
        if args.dtype == "auto" and device.type == "cpu":
            dtype = torch.bfloat16  # float32 would need 28 GB for the weights alone
        return _full_size_main(args, device, dtype)
    if args.max_new_tokens is None:
        args.max_new_tokens = 16
    if args.lora_r is None:
        args.lora_r = 8
    tiny_main(args, device, dtype)
    return 0


def _print_tiny_header(device: torch.device, dtype: torch.dtype) -> None:
    """Where the tiny run happens and which memory it reports."""
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


def _tiny_train(
    device: torch.device, dtype: torch.dtype, folder: Path, tmp: Path,
    records: list[dict[str, Any]], lora_r: int,
) -> dict[str, Any]:  # fmt: skip
    """Load the tiny model and train one LoRA step over ``records`` into ``tmp/adapter``; the
    two measurements, the loss and the dtype the LoRA weights were saved in."""
    (model, processor), load = measure(
        device, lambda: load_model(str(folder), str(device), dtype=dtype)
    )
    processor.tokenizer.padding_side = "right"  # as finetune_lora does
    config = TrainConfig(
        lora_r=lora_r, lora_alpha=2 * lora_r, max_steps=1, grad_accum=len(records),
        max_length=512,
    )  # fmt: skip
    adapter = tmp / "adapter"
    (_, losses), step = measure(
        device,
        lambda: train(model, processor, records, tmp / "data", adapter, config),
    )
    saved = load_file(adapter / "adapter_model.safetensors")
    return {
        "load": load,
        "step": step,
        "loss": losses[0] if losses else float("nan"),
        "lora_dtype": next(t.dtype for n, t in saved.items() if "lora_A" in n),
    }


def _tiny_explain(
    device: torch.device, dtype: torch.dtype, folder: Path, tmp: Path, test_row: ManifestRow,
    max_new_tokens: int,
) -> tuple[dict[str, Any], dict[str, float]]:  # fmt: skip
    """Reload the tiny model with the trained adapter and explain ``test_row``; its record and
    the measurement of the explanation."""
    (model, processor), _ = measure(
        device, lambda: load_model(str(folder), str(device), dtype=dtype)
    )
    model = load_adapter(model, tmp / "adapter")
    model.eval()
    explained, explain = measure(
        device,
        lambda: explain_rows(
            model, processor, tmp / "data", [test_row], batch_size=1,
            max_new_tokens=max_new_tokens, force_answer=True,
        ),
    )  # fmt: skip
    return explained[0], explain


def _print_tiny_results(
    args: argparse.Namespace, dtype: torch.dtype, conversations: int, trained: dict[str, Any],
    record: dict[str, Any], explain: dict[str, float],
) -> None:  # fmt: skip
    """The table of the three parts, the ratios, and the checks of loss and probability."""
    load, step, loss = trained["load"], trained["step"], trained["loss"]
    print(f"\n{'part':<44} {'wall s':>8} {'before MB':>10} {'peak MB':>9}")
    parts = (
        ("load model + processor", load),
        (f"LoRA step (r {args.lora_r}, {conversations} conversations accumulated)", step),
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
    dtype_name = str(dtype).removeprefix("torch.")
    print(f"{dtype_name} training loss {loss:.4f}: finite {'yes' if math.isfinite(loss) else 'NO'}")
    print(f"LoRA weights trained and saved in {str(trained['lora_dtype']).removeprefix('torch.')}")
    prob = record["prob_fake"]
    in_range = 0.0 <= prob <= 1.0
    print(
        f"explanation P(fake) = {prob:.4f}: in [0, 1] {'yes' if in_range else 'NO'} "
        f"(verdict {record['verdict']}, forced {record['forced']}, "
        f"{len(record['generated'].split())} words generated)"
    )
    print("(random weights: the loss, verdict and probability themselves mean nothing)")


def tiny_main(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> None:
    """The default run: one step and one explanation of the tiny random model."""
    _print_tiny_header(device, dtype)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        start = time.perf_counter()
        folder = build_tiny_llava(tmp / "model")
        records, test_row = write_inputs(tmp / "data")
        print(
            f"tiny model and {len(records)} conversations written in "
            f"{time.perf_counter() - start:.1f} s"
        )
        trained = _tiny_train(device, dtype, folder, tmp, records, args.lora_r)
        record, explain = _tiny_explain(device, dtype, folder, tmp, test_row, args.max_new_tokens)
    _print_tiny_results(args, dtype, len(records), trained, record, explain)


if __name__ == "__main__":
    # nothing here needs the Hub: never let a missing file turn into a download attempt
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
