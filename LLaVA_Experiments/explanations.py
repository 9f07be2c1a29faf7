"""Explaining test images: one record per image (the explanation, the verdict word, P(fake)),
batch by batch with a resumable journal, and the files that hold them for reading."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from datagen.manifest import LABEL_NAMES, ManifestRow
from LLaVA_Experiments.generation import fake_probabilities, generate_texts
from LLaVA_Experiments.images import load_image
from LLaVA_Experiments.journal import Journal
from LLaVA_Experiments.prompts import ANSWER_PREFIX, QUESTION, build_prompt, parse_verdict
from rfd_common.files import atomic_write_json, atomic_write_text
from rfd_common.tables import csv_text

CSV_FIELDS = ("path", "source", "label", "verdict", "forced", "prob_fake", "explanation")
# appended to the CSV when the records hold a detector's heat maps (explain --heatmap_checkpoint)
HEATMAP_CSV_FIELDS = ("detector_prob_fake", "heatmap")
# extra fields per record for a batch of rows, in order (LLaVA_Experiments.heatmaps.RowHeatmaps)
RowFields = Callable[[Sequence[ManifestRow]], list[dict[str, Any]]]


def _record(
    row: ManifestRow, question: str, text: str, body: str, verdict: str, forced: bool, prob: float
) -> dict[str, Any]:
    """What is kept of one image's explanation."""
    return {
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
        records.append(_record(row, question, text, body, verdict, forced, prob))
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
    heatmaps: RowFields | None = None,
) -> list[dict[str, Any]]:
    """Records for ``rows`` in order (see :func:`explain_batch`), batch by batch.

    With a ``journal``, images it already holds are not asked again and every finished batch
    is appended to it, so a killed run resumes where it stopped. ``heatmaps`` adds its fields
    (a detector's heat map of the image) to each record before the batch is journalled.
    """
    done: dict[str, dict[str, Any]] = dict(journal.records) if journal is not None else {}
    todo = [r for r in rows if r.path not in done]
    bar = tqdm(
        total=len(rows), initial=len(rows) - len(todo), desc="explain", unit="img",
        disable=not progress,
    )  # fmt: skip
    step = max(1, batch_size)
    with bar:
        for start in range(0, len(todo), step):
            chunk = todo[start : start + step]
            records = explain_batch(
                model, processor, root, chunk, question, max_new_tokens, force_answer
            )
            if heatmaps is not None:
                for record, extra in zip(records, heatmaps(chunk), strict=True):
                    record.update(extra)
            if journal is not None:
                journal.append(records)
            done.update((r["path"], r) for r in records)
            bar.update(len(chunk))
    return [done[r.path] for r in rows]


def write_explanations(folder: Path, records: Sequence[dict[str, Any]], info: dict) -> None:
    """explanations.json (everything), explanations.csv and explanations.txt (for reading);
    records with a heat map add its columns to the CSV and a line to the text."""
    atomic_write_json(folder / "explanations.json", {"info": info, "images": list(records)})
    with_maps = any("heatmap" in r for r in records)
    fields = CSV_FIELDS + HEATMAP_CSV_FIELDS if with_maps else CSV_FIELDS
    rows = [[r.get(f) for f in fields] for r in records]
    atomic_write_text(folder / "explanations.csv", csv_text(fields, rows))
    blocks = []
    for r in records:
        flag = " (forced)" if r["forced"] else ""
        heatmap = (
            f"heat map: {r['heatmap']} (detector P(fake) = {r['detector_prob_fake']:.4f}, "
            f"evidence for {r['heatmap_class']})\n"
            if r.get("heatmap")
            else ""
        )
        blocks.append(
            f"== {r['path']}  [{r['source']}, truth {r['truth']}]\n"
            f"Q: {r['question']}\n"
            f"A: {r['explanation']}\n"
            f"verdict: {r['verdict']}{flag}  P(fake) = {r['prob_fake']:.4f}\n" + heatmap
        )
    atomic_write_text(folder / "explanations.txt", "\n".join(blocks))
