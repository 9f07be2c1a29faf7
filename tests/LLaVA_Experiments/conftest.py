"""A tiny random LLaVA-NeXT with an in-memory tokenizer, and a tiny dataset, for offline tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from datagen.manifest import ManifestRow, write_manifest
from LLaVA_Experiments.prompts import build_prompt
from LLaVA_Experiments.tiny_model import build_tiny_llava


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny matrices: threads only add contention on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_llava(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llava(tmp_path_factory.mktemp("tiny-llava") / "model")


@pytest.fixture(scope="session")
def other_llava(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second tiny model with a different hidden size (for adapter mismatch tests)."""
    return build_tiny_llava(tmp_path_factory.mktemp("other-llava") / "model", seed=1, hidden=48)


SOURCES = (("real_photos", 0, "real"), ("stylegan3", 1, "gan"), ("sd_v1", 1, "diffusion"))


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 sources x (4 train + 3 val) random 16 px images with a manifest."""
    root = tmp_path_factory.mktemp("tiny-data") / "data"
    rng = np.random.default_rng(0)
    rows = []
    for source, label, family in SOURCES:
        for split, count in (("train", 4), ("val", 3)):
            for index in range(count):
                rel = f"{split}/{source}/{index}.png"
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                pixels = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / rel)
                rows.append(ManifestRow(rel, label, source, split, family))
    write_manifest(rows, root)
    return root


def independent_prob_fake(model, processor, root: Path, record: dict) -> float:
    """P(fake) of one record recomputed alone: the full-sequence forward of one unpadded
    example, the last position's logits of the words ``real`` and ``fake`` (token ids from the
    tokenizer's own vocabulary), softmaxed against each other."""
    explanation = record["explanation"]
    prompt = build_prompt(record["question"])
    context = f"{prompt} {explanation}\nAnswer:" if explanation else f"{prompt} Answer:"
    with Image.open(root / record["path"]) as image:
        inputs = processor(images=[image.convert("RGB")], text=[context], return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits[0, -1].float()
    vocab = processor.tokenizer.get_vocab()
    pair = torch.stack([logits[vocab["real"]], logits[vocab["fake"]]])
    return float(torch.softmax(pair, dim=0)[1])
