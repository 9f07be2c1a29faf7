"""Explain and judge test images with the (fine-tuned) LLaVA-NeXT model.

For each image: the unguided question, the generated explanation, the parsed verdict word and
the probability of fake, read from the logits of ``real`` vs ``fake`` right after ``Answer:``.
Per-source accuracy and per-generator AP come from those probabilities.

    python -m LLaVA_Experiments.explain --model llava-hf/llava-v1.6-vicuna-7b-hf \
        --adapter checkpoints/llava_lora --data_root DATA --name llava_lora
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datagen.manifest import ManifestRow, read_manifest, sample_per_source, select
from LLaVA_Experiments.adapters import check_adapter_folder
from LLaVA_Experiments.hub import DEFAULT_MODEL
from LLaVA_Experiments.journal import Journal
from LLaVA_Experiments.options import add_generation_options
from LLaVA_Experiments.torchrun_job import join_generation_job
from rfd_common.errors import UserError, exit_on_user_error
from rfd_common.files import ensure_writable_dir

if TYPE_CHECKING:
    from LLaVA_Experiments.heatmaps import RowHeatmaps
    from UniversalFakeDetect.features.shard import Shard
    from UniversalFakeDetect.heatmaps.pipeline import CheckpointExplainer

JOURNAL_NAME = "explanations.partial.jsonl"


def build_parser() -> argparse.ArgumentParser:
    """The flags of ``python -m LLaVA_Experiments.explain``."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=DEFAULT_MODEL, help="hub id or local folder")
    p.add_argument("--adapter", default=None, help="LoRA adapter folder from finetune_lora")
    p.add_argument("--data_root", default=None, help="dataset folder (default: demo dataset)")
    p.add_argument("--split", default="val", choices=("train", "val"))
    p.add_argument("--sources", nargs="*", default=None, help="only these sources")
    p.add_argument("--per_source", type=int, default=None, help="sample this many per source")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", default="llava_explain", help="results go to RESULTS_DIR/NAME/")
    p.add_argument(
        "--results_dir", "--result_folder", dest="results_dir",
        default=os.environ.get("RFD_RESULTS_DIR", "results"),
        help="./results or $RFD_RESULTS_DIR",
    )  # fmt: skip
    add_generation_options(p, max_new_tokens=256)
    p.add_argument("--force_answer", action="store_true", help="verdict always from the logits")
    p.add_argument(
        "--restart", action="store_true",
        help="discard an unfinished run of this --name instead of resuming it",
    )  # fmt: skip
    p.add_argument(
        "--heatmap_checkpoint", default=None, metavar="PATH",
        help="a trained detector checkpoint (.safetensors from train.py): beside each "
        "explanation, write where that detector looks, its Grad-CAM heat map of the image "
        "for its own verdict (RESULTS_DIR/NAME/heatmaps/<image path>.png, the map as .npy), "
        "and add the paths to the explanation's record (off)",
    )  # fmt: skip
    return p


def run_settings(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """What must stay equal for an interrupted run to be resumed (batch size may change)."""
    return {
        "model": args.model, "adapter": args.adapter, "data_root": str(root),
        "split": args.split, "sources": args.sources, "per_source": args.per_source,
        "seed": args.seed, "question": args.question, "max_new_tokens": args.max_new_tokens,
        "force_answer": args.force_answer, "load_in_4bit": args.load_in_4bit,
        "dtype": args.dtype,
    } | (  # only when given, so that journals of runs without heat maps still resume
        {"heatmap_checkpoint": args.heatmap_checkpoint} if args.heatmap_checkpoint else {}
    )  # fmt: skip


def _test_rows(args: argparse.Namespace) -> tuple[Path, list[ManifestRow]]:
    """The dataset folder and the images to explain (split, sources, sampled per source)."""
    if args.batch_size < 1 or (args.per_source is not None and args.per_source < 1):
        raise UserError("--batch_size and --per_source must be at least 1")
    from UniversalFakeDetect.data.data_root import resolve_data_root

    root = resolve_data_root(args.data_root)
    rows = select(read_manifest(root), split=args.split, sources=args.sources)
    rows = sample_per_source(rows, args.per_source, args.seed)
    if not rows:
        raise UserError(f"no images in split '{args.split}' of {root} for the chosen sources")
    return root, rows


def _load(args: argparse.Namespace) -> tuple[Any, Any]:
    """The model (with ``--adapter`` when given) and its processor, ready for inference."""
    from LLaVA_Experiments.adapters import load_adapter
    from LLaVA_Experiments.loading import load_model

    model, processor = load_model(args.model, args.device, args.load_in_4bit, args.dtype)
    if args.adapter:
        model = load_adapter(model, args.adapter)
        model.eval()
    return model, processor


def _explain(
    args: argparse.Namespace, root: Path, rows: list[ManifestRow], journal: Journal,
    heatmaps: RowHeatmaps | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """Load the model and explain every row not yet in ``journal``."""
    from LLaVA_Experiments.explanations import explain_rows

    model, processor = _load(args)
    return explain_rows(
        model, processor, root, rows, args.question, args.batch_size, args.max_new_tokens,
        force_answer=args.force_answer, journal=journal, progress=True, heatmaps=heatmaps,
    )  # fmt: skip


def _heatmap_detector(args: argparse.Namespace) -> CheckpointExplainer | None:
    """``--heatmap_checkpoint``'s detector (on the CPU), checked before the model loads."""
    if not args.heatmap_checkpoint:
        return None
    from LLaVA_Experiments.heatmaps import load_heatmap_detector

    return load_heatmap_detector(args.heatmap_checkpoint)


def _row_heatmaps(
    args: argparse.Namespace, detector: CheckpointExplainer | None, root: Path, out: Path
) -> RowHeatmaps | None:
    """The heat-map writer, its detector on this run's (or this rank's) device."""
    if detector is None:
        return None
    from LLaVA_Experiments.heatmaps import RowHeatmaps
    from LLaVA_Experiments.loading import pick_device

    detector.explainer.detector.to(pick_device(args.device))
    return RowHeatmaps(detector, root, out)


def _write_results(
    out: Path, rows: list[ManifestRow], records: list[dict[str, Any]], settings: dict[str, Any]
) -> str:
    """Metrics, plots and the explanation files; returns the metrics table to print."""
    from LLaVA_Experiments.explanations import write_explanations
    from UniversalFakeDetect.evaluation.metrics import evaluate_predictions
    from UniversalFakeDetect.evaluation.plots import plot_all
    from UniversalFakeDetect.evaluation.report import format_table, write_report

    probs = [r["prob_fake"] for r in records]
    verdicts = [int(r["verdict"] == "fake") for r in records]
    result = evaluate_predictions(rows, probs, decisions=verdicts)
    info = {
        **settings, "images": len(rows), "forced": sum(r["forced"] for r in records),
        "accuracy_from": "the verdict word (from the logits where forced)",
        "ap_from": "P(fake) from the logits of 'real' vs 'fake' after 'Answer:'",
    }  # fmt: skip
    write_report(result, out, rows, probs, info)
    plot_all(out)
    write_explanations(out, records, info)
    return format_table(result)


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> int:
    """Explain the chosen test images, resumably; write metrics, plots and explanations.

    Under torchrun every rank explains images ``rank, rank + N, ...`` on its own GPU (with its
    own journal, so each resumes its share); rank 0 gathers the records and writes the same
    files one process writes."""
    args = build_parser().parse_args(argv)
    root, rows = _test_rows(args)
    if args.adapter:
        check_adapter_folder(args.adapter)  # before minutes of model loading
    detector = _heatmap_detector(args)
    out = ensure_writable_dir(Path(args.results_dir) / args.name, flag="--results_dir/--name")
    settings = run_settings(args, root)
    shard = join_generation_job(args)
    mine = rows if shard is None else rows[shard.rank :: shard.world]
    name = JOURNAL_NAME if shard is None else f"{JOURNAL_NAME}.{shard.stem}"
    journal = Journal.open(out / name, settings, "path", args.restart, flag="--name")
    if len(journal):
        print(f"resuming: {len(journal)} images already explained in {journal.path}")
    records = _explain(args, root, mine, journal, _row_heatmaps(args, detector, root, out))
    if shard is not None:
        records = _gather_records(records, shard, len(rows))
        if not shard.is_main:
            _leave_job(journal)
            return 0
    table = _write_results(out, rows, records, settings)
    journal.discard()
    _leave_job(None)
    print(table)
    print(f"results in {out}")
    return 0


def _gather_records(
    records: list[dict[str, Any]], shard: Shard, count: int
) -> list[dict[str, Any]]:
    """Every rank's records, back in the order of the rows (rank r had rows r, r + N, ...)."""
    import torch.distributed as dist

    parts: list[Any] = [None] * shard.world
    dist.all_gather_object(parts, records)
    merged: list[Any] = [None] * count
    for rank, part in enumerate(parts):
        merged[rank :: shard.world] = part
    return merged


def _leave_job(journal: Journal | None) -> None:
    """After rank 0 has written the results: every rank drops its journal and leaves."""
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_initialized():
        return
    dist.barrier()
    if journal is not None:
        journal.discard()
    dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
