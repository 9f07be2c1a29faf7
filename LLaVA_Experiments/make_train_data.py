"""Explanation data for LoRA fine-tuning, in the LLaVA JSON conversation format.

For each training source, sampled images are shown to the base model with a *guided* prompt
that states the truth (real, or fake made by the named generator) and asks for the visual
evidence, ending with ``Answer: real`` or ``Answer: fake``. The answer is stored as the assistant
turn of a conversation whose user turn is the *unguided* question, so no label leaks into it.
Answers that do not end with the right ``Answer:`` are dropped, counted and kept beside
``--out`` (``NAME.dropped.json``) for inspection. Re-running resumes: ids already in ``--out``
or dropped before are skipped (``--retry_dropped`` asks the dropped ones again).

    python -m LLaVA_Experiments.make_train_data --data_root DATA --per_source 500 \
        --out LLaVA_Experiments/data/train_explanations.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from datagen.manifest import LABEL_NAMES, ManifestRow, read_manifest, sample_per_source, select
from LLaVA_Experiments.conversations import read_conversations, single_turn
from LLaVA_Experiments.hub import DEFAULT_MODEL
from LLaVA_Experiments.images import load_image
from LLaVA_Experiments.options import add_generation_options
from LLaVA_Experiments.prompts import (
    QUESTION,
    build_prompt,
    ends_with_answer,
    guided_question,
    normalize_answer,
)
from LLaVA_Experiments.torchrun_job import join_generation_job
from rfd_common.errors import UserError, exit_on_user_error
from rfd_common.files import atomic_write_json

if TYPE_CHECKING:
    from UniversalFakeDetect.features.shard import Shard

GenerateFn = Callable[[Sequence[Any], Sequence[str]], list[str]]


def record_id(row: ManifestRow) -> str:
    """A conversation's id: the image path without its extension."""
    return row.path.rsplit(".", 1)[0]


def dropped_path(out: Path) -> Path:
    """Where the answers without the right ``Answer:`` ending are kept, beside ``out``."""
    return Path(out).with_name(Path(out).stem + ".dropped.json")


def sample_training_rows(
    rows: Sequence[ManifestRow], per_source: int, seed: int, split: str = "train"
) -> list[ManifestRow]:
    """``per_source`` images of each source of ``split`` (all if fewer), seeded."""
    return sample_per_source(select(rows, split=split), per_source, seed)


@dataclass
class Counts:
    """What one call did: conversations written, ids skipped (already done), answers dropped."""

    written: int = 0
    skipped: int = 0
    dropped: int = 0
    by_source: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, source: str, outcome: str) -> None:
        """Count one ``written`` or ``dropped`` answer of ``source``."""
        setattr(self, outcome, getattr(self, outcome) + 1)
        per = self.by_source.setdefault(source, {"written": 0, "dropped": 0})
        per[outcome] += 1


def _read_dropped(path: Path) -> list[dict[str, Any]]:
    """The answers dropped by earlier runs (none when the file is absent)."""
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc}); delete it to ask again") from exc
    return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []


def _earlier_work(
    rows: Sequence[ManifestRow], out: Path, retry_dropped: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], set[Any]]:
    """What earlier runs left: the conversations in ``out``, the dropped answers (less those
    asked again with ``retry_dropped``), and the ids not to ask again."""
    records: list[dict[str, Any]] = read_conversations(out) if out.exists() else []
    done = {r.get("id") for r in records if isinstance(r, dict)}
    dropped = _read_dropped(dropped_path(out))
    if retry_dropped:
        wanted = {record_id(r) for r in rows}
        dropped = [d for d in dropped if d.get("id") not in wanted]
    done |= {d.get("id") for d in dropped}
    return records, dropped, done


def _sort_answers(
    chunk: Sequence[ManifestRow],
    answers: Sequence[str],
    question: str,
    records: list[dict[str, Any]],
    dropped: list[dict[str, Any]],
    counts: Counts,
) -> None:
    """Keep each answer ending with the right ``Answer:`` as a conversation; drop the rest."""
    for row, answer in zip(chunk, answers, strict=True):
        entry = {"id": record_id(row), "image": row.path, "source": row.source}
        if not ends_with_answer(answer, LABEL_NAMES[row.label]):
            dropped.append({**entry, "label": LABEL_NAMES[row.label], "answer": answer})
            counts.add(row.source, "dropped")
            continue
        records.append(
            single_turn(
                record_id(row), row.path, question, normalize_answer(answer), source=row.source
            )
        )
        counts.add(row.source, "written")


def build_conversations(
    rows: Sequence[ManifestRow],
    root: Path,
    out: Path,
    generate: GenerateFn,
    batch_size: int = 4,
    question: str = QUESTION,
    retry_dropped: bool = False,
    progress: bool = False,
) -> Counts:
    """Generate, check and append conversations to ``out``, rewritten atomically per batch.

    Ids already in ``out`` are skipped, and so are ids whose answer was dropped before (kept
    in :func:`dropped_path`) unless ``retry_dropped``.
    """
    out = Path(out)
    records, dropped, done = _earlier_work(rows, out, retry_dropped)
    counts = Counts(skipped=len({record_id(r) for r in rows} & done))
    todo = [r for r in rows if record_id(r) not in done]
    step = max(1, batch_size)
    with tqdm(total=len(todo), desc="explanations", unit="img", disable=not progress) as bar:
        for start in range(0, len(todo), step):
            chunk = todo[start : start + step]
            images = [load_image(root, r.path) for r in chunk]
            prompts = [build_prompt(guided_question(r)) for r in chunk]
            _sort_answers(chunk, generate(images, prompts), question, records, dropped, counts)
            atomic_write_json(out, records)
            if dropped or dropped_path(out).exists():
                atomic_write_json(dropped_path(out), dropped)
            bar.update(len(chunk))
            bar.set_postfix(written=counts.written, dropped=counts.dropped)
    if not out.exists():
        atomic_write_json(out, records)
    return counts


def build_parser() -> argparse.ArgumentParser:
    """The flags of ``python -m LLaVA_Experiments.make_train_data``."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=DEFAULT_MODEL, help="hub id or local folder")
    p.add_argument("--data_root", default=None, help="dataset folder (default: demo dataset)")
    p.add_argument("--out", default="LLaVA_Experiments/data/train_explanations.json")
    p.add_argument("--per_source", type=int, default=500)
    p.add_argument("--split", default="train", choices=("train", "val"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--retry_dropped", action="store_true",
        help="ask again for the images whose answer was dropped in an earlier run",
    )  # fmt: skip
    add_generation_options(p, max_new_tokens=300)
    return p


def _training_rows(args: argparse.Namespace) -> tuple[Path, list[ManifestRow]]:
    """The dataset folder and the sampled images to ask about."""
    if args.per_source < 1 or args.batch_size < 1:
        raise UserError("--per_source and --batch_size must be at least 1")
    from UniversalFakeDetect.data.data_root import resolve_data_root

    root = resolve_data_root(args.data_root)
    rows = sample_training_rows(read_manifest(root), args.per_source, args.seed, args.split)
    if not rows:
        raise UserError(f"no images in split '{args.split}' of {root}")
    return root, rows


def _check_out(out: Path) -> None:
    """``--out``'s folder must be creatable and an existing file readable (before loading)."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out {out}: cannot create its folder ({exc.strerror})") from exc
    if out.exists():
        read_conversations(out)  # a broken file stops us before minutes of model loading


def _model_generator(args: argparse.Namespace) -> GenerateFn:
    """Load the base model; a function that answers a batch of images and prompts."""
    from LLaVA_Experiments.generation import generate_texts
    from LLaVA_Experiments.loading import load_model

    model, processor = load_model(args.model, args.device, args.load_in_4bit, args.dtype)

    def generate(images: Sequence[Any], prompts: Sequence[str]) -> list[str]:
        """The base model's answers to ``prompts`` about ``images``."""
        return generate_texts(model, processor, images, prompts, args.max_new_tokens)

    return generate


def _print_counts(counts: Counts, out: Path) -> None:
    """Written and dropped per source, then a JSON summary line."""
    for source, per in sorted(counts.by_source.items()):
        print(f"{source:40s} written {per['written']:6d}  dropped {per['dropped']:6d}")
    print(
        json.dumps(
            {"out": str(out), "written": counts.written, "skipped_existing": counts.skipped,
             "dropped_wrong_answer": counts.dropped, "dropped_file": str(dropped_path(out))}
        )
    )  # fmt: skip


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> int:
    """Sample training images, ask the base model, keep the right answers as conversations.

    Under torchrun every rank asks about images ``rank, rank + N, ...`` of those not done yet,
    on the GPU of its ``LOCAL_RANK``, into its own part files (resumable); rank 0 merges them
    into ``--out`` and its dropped file, in the order one process writes."""
    args = build_parser().parse_args(argv)
    root, rows = _training_rows(args)
    out = Path(args.out)
    _check_out(out)
    shard = join_generation_job(args)
    if shard is None:
        counts = build_conversations(
            rows, root, out, _model_generator(args), args.batch_size, args.question,
            args.retry_dropped, progress=True,
        )  # fmt: skip
    else:
        counts = _build_share(args, rows, root, out, shard)
        if not shard.is_main:
            return 0
    _print_counts(counts, out)
    return 0


def _part_path(out: Path, shard: Shard) -> Path:
    return out.with_name(f"{out.stem}.{shard.stem}{out.suffix}")


def _build_share(
    args: argparse.Namespace, rows: list[ManifestRow], root: Path, out: Path, shard: Shard
) -> Counts:
    """This rank's share into its part files; then rank 0 merges every rank's into ``out``."""
    import torch.distributed as dist

    records, dropped, done = _earlier_work(rows, out, args.retry_dropped)
    todo = [r for r in rows if record_id(r) not in done]
    part = _part_path(out, shard)
    counts = build_conversations(
        todo[shard.rank :: shard.world], root, part, _model_generator(args), args.batch_size,
        args.question, progress=shard.is_main,
    )  # fmt: skip
    mine = (read_conversations(part), _read_dropped(dropped_path(part)), counts)
    parts: list[Any] = [None] * shard.world
    dist.all_gather_object(parts, mine)
    if shard.is_main:
        order = {record_id(r): i for i, r in enumerate(rows)}

        def in_row_order(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return sorted(items, key=lambda item: order.get(item.get("id"), len(order)))

        new_records = in_row_order([r for p in parts for r in p[0]])
        new_dropped = in_row_order([d for p in parts for d in p[1]])
        atomic_write_json(out, records + new_records)
        if dropped or new_dropped or dropped_path(out).exists():
            atomic_write_json(dropped_path(out), dropped + new_dropped)
        counts = _merged_counts([p[2] for p in parts], len(rows) - len(todo))
    dist.barrier()  # the merged files are written: the parts can go
    part.unlink(missing_ok=True)
    dropped_path(part).unlink(missing_ok=True)
    dist.destroy_process_group()
    return counts


def _merged_counts(parts: list[Counts], skipped: int) -> Counts:
    """The counts of all ranks as one run's."""
    merged = Counts(skipped=skipped)
    for part in parts:
        merged.written += part.written
        merged.dropped += part.dropped
        for source, per in part.by_source.items():
            total = merged.by_source.setdefault(source, {"written": 0, "dropped": 0})
            for outcome, value in per.items():
                total[outcome] += value
    return merged


if __name__ == "__main__":
    sys.exit(main())
