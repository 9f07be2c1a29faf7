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
from typing import Any

import torch
from tqdm import tqdm

from datagen.manifest import LABEL_NAMES, ManifestRow, read_manifest, sample_per_source, select
from LLaVA_Experiments.journal import Journal
from LLaVA_Experiments.model import (
    ANSWER_PREFIX,
    DEFAULT_MODEL,
    QUESTION,
    add_generation_options,
    batched,
    build_prompt,
    check_adapter_folder,
    load_adapter,
    load_image,
    load_model,
    parse_verdict,
    to_model,
    verdict_token_ids,
)
from rfd_common.errors import UserError, exit_on_user_error
from rfd_common.files import atomic_write_json, atomic_write_text, ensure_writable_dir
from rfd_common.tables import csv_text
from UniversalFakeDetect.data.data_root import resolve_data_root
from UniversalFakeDetect.evaluation.metrics import evaluate_predictions
from UniversalFakeDetect.evaluation.plots import plot_all
from UniversalFakeDetect.evaluation.report import format_table, write_report


@torch.no_grad()
def generate_texts(
    model: Any,
    processor: Any,
    images: Sequence[Any],
    prompts: Sequence[str],
    max_new_tokens: int,
    **generate_kwargs: Any,
) -> list[str]:
    """Greedy (by default) batched generation; returns only the new text of each prompt."""
    processor.tokenizer.padding_side = "left"
    inputs = processor(images=list(images), text=list(prompts), return_tensors="pt", padding=True)
    inputs = to_model(inputs, model)
    if max_new_tokens <= 0:
        return ["" for _ in prompts]
    kwargs = {"do_sample": False, "pad_token_id": processor.tokenizer.pad_token_id}
    kwargs.update(generate_kwargs)
    output = model.generate(**inputs, max_new_tokens=max_new_tokens, **kwargs)
    new = output[:, inputs["input_ids"].shape[1] :]
    return [t.strip() for t in processor.batch_decode(new, skip_special_tokens=True)]


@torch.no_grad()
def fake_probabilities(
    model: Any, processor: Any, images: Sequence[Any], contexts: Sequence[str]
) -> list[float]:
    """P(fake) from the next-token logits of ``real`` vs ``fake`` after each context.

    Each context must end with ``Answer:``; the two logits are softmaxed against each other.
    """
    real_id, fake_id = verdict_token_ids(processor.tokenizer)
    processor.tokenizer.padding_side = "left"
    inputs = processor(images=list(images), text=list(contexts), return_tensors="pt", padding=True)
    inputs = to_model(inputs, model)
    logits = model(**inputs, logits_to_keep=1).logits[:, -1, :].float()  # last position only
    pair = torch.stack([logits[:, real_id], logits[:, fake_id]], dim=1)
    return torch.softmax(pair, dim=1)[:, 1].cpu().tolist()


def explain_batch(
    model: Any,
    processor: Any,
    root: Path,
    rows: Sequence[ManifestRow],
    question: str = QUESTION,
    max_new_tokens: int = 256,
    force_answer: bool = False,
) -> list[dict[str, Any]]:
    """One record per row: question, explanation, verdict, prob_fake, and whether forced.

    The verdict is the model's own ``Answer:`` word; when it gave none (or ``force_answer``),
    ``Answer:`` is appended to its explanation and the more likely of ``real``/``fake`` is taken
    (``forced`` true). The probability always comes from the logits after ``Answer:``.
    """
    prompt = build_prompt(question)
    images = [load_image(root, r.path) for r in rows]
    texts = generate_texts(model, processor, images, [prompt] * len(rows), max_new_tokens)
    parsed = [parse_verdict(t) for t in texts]
    contexts = [
        # the same layout as the training answers: explanation, newline, "Answer:"
        f"{prompt} {body}\n{ANSWER_PREFIX}" if body else f"{prompt} {ANSWER_PREFIX}"
        for body, _ in parsed
    ]
    probs = fake_probabilities(model, processor, images, contexts)
    records = []
    for row, text, (body, word), prob in zip(rows, texts, parsed, probs, strict=True):
        forced = force_answer or word is None
        verdict = ("fake" if prob >= 0.5 else "real") if forced else word
        records.append(
            {
                "path": row.path,
                "source": row.source,
                "label": row.label,
                "truth": LABEL_NAMES[row.label],
                "question": question,
                "explanation": body,
                "generated": text,
                "verdict": verdict,
                "forced": forced,
                "prob_fake": float(prob),
                "answer": f"{body}\n{ANSWER_PREFIX} {verdict}".strip(),
            }
        )
    return records


def explain_rows(
    model: Any,
    processor: Any,
    root: Path,
    rows: Sequence[ManifestRow],
    question: str = QUESTION,
    batch_size: int = 4,
    max_new_tokens: int = 256,
    force_answer: bool = False,
    journal: Journal | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Records for ``rows`` in order (see :func:`explain_batch`), batch by batch.

    With a ``journal``, images it already holds are not asked again and every finished batch
    is appended to it, so a killed run resumes where it stopped.
    """
    done: dict[str, dict[str, Any]] = dict(journal.records) if journal is not None else {}
    todo = [r for r in rows if r.path not in done]
    bar = tqdm(
        total=len(rows), initial=len(rows) - len(todo), desc="explain", unit="img",
        disable=not progress,
    )  # fmt: skip
    with bar:
        for chunk in batched(todo, batch_size):
            records = explain_batch(
                model, processor, root, chunk, question, max_new_tokens, force_answer
            )
            if journal is not None:
                journal.append(records)
            done.update((r["path"], r) for r in records)
            bar.update(len(chunk))
    return [done[r.path] for r in rows]


JOURNAL_NAME = "explanations.partial.jsonl"
CSV_FIELDS = ("path", "source", "label", "verdict", "forced", "prob_fake", "explanation")


def write_explanations(folder: Path, records: Sequence[dict[str, Any]], info: dict) -> None:
    """explanations.json (everything), explanations.csv and explanations.txt (for reading)."""
    atomic_write_json(folder / "explanations.json", {"info": info, "images": list(records)})
    rows = [[r[f] for f in CSV_FIELDS] for r in records]
    atomic_write_text(folder / "explanations.csv", csv_text(CSV_FIELDS, rows))
    blocks = []
    for r in records:
        flag = " (forced)" if r["forced"] else ""
        blocks.append(
            f"== {r['path']}  [{r['source']}, truth {r['truth']}]\n"
            f"Q: {r['question']}\n"
            f"A: {r['explanation']}\n"
            f"verdict: {r['verdict']}{flag}  P(fake) = {r['prob_fake']:.4f}\n"
        )
    atomic_write_text(folder / "explanations.txt", "\n".join(blocks))


def build_parser() -> argparse.ArgumentParser:
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
    return p


def run_settings(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """What must stay equal for an interrupted run to be resumed (batch size may change)."""
    return {
        "model": args.model, "adapter": args.adapter, "data_root": str(root),
        "split": args.split, "sources": args.sources, "per_source": args.per_source,
        "seed": args.seed, "question": args.question, "max_new_tokens": args.max_new_tokens,
        "force_answer": args.force_answer, "load_in_4bit": args.load_in_4bit,
        "dtype": args.dtype,
    }  # fmt: skip


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.batch_size < 1 or (args.per_source is not None and args.per_source < 1):
        raise UserError("--batch_size and --per_source must be at least 1")
    root = resolve_data_root(args.data_root)
    rows = select(read_manifest(root), split=args.split, sources=args.sources)
    rows = sample_per_source(rows, args.per_source, args.seed)
    if not rows:
        raise UserError(f"no images in split '{args.split}' of {root} for the chosen sources")
    if args.adapter:
        check_adapter_folder(args.adapter)  # before minutes of model loading
    out = ensure_writable_dir(Path(args.results_dir) / args.name, flag="--results_dir/--name")
    settings = run_settings(args, root)
    journal = Journal.open(out / JOURNAL_NAME, settings, "path", args.restart, flag="--name")
    if len(journal):
        print(f"resuming: {len(journal)} images already explained in {journal.path}")
    model, processor = load_model(args.model, args.device, args.load_in_4bit, args.dtype)
    if args.adapter:
        model = load_adapter(model, args.adapter)
        model.eval()
    records = explain_rows(
        model, processor, root, rows, args.question, args.batch_size, args.max_new_tokens,
        force_answer=args.force_answer, journal=journal, progress=True,
    )  # fmt: skip
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
    journal.discard()
    print(format_table(result))
    print(f"results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
