"""The tiny random LLaVA-NeXT's CLI: a loadable model whose image tokens match the processor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from LLaVA_Experiments import tiny_model
from LLaVA_Experiments.loading import load_model
from LLaVA_Experiments.prompts import IMAGE_TOKEN, build_prompt


@pytest.fixture(scope="module")
def cli_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny-cli") / "nested" / "model"
    assert tiny_model.main(["--out", str(out)]) == 0
    return out


def test_cli_output_equals_the_library_build(cli_model: Path, tiny_llava: Path) -> None:
    """Same seed, same weights: the CLI and the tests' fixture build the same model."""
    assert (cli_model / "model.safetensors").read_bytes() == (
        tiny_llava / "model.safetensors"
    ).read_bytes()
    assert "RANDOM WEIGHTS" in (cli_model / "README.md").read_text()


def test_cli_model_loads_and_its_image_tokens_match(cli_model: Path) -> None:
    model, processor = load_model(str(cli_model), device="cpu")
    assert next(model.parameters()).device.type == "cpu"
    pixels = np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    inputs = processor(images=[image], text=[build_prompt()], return_tensors="pt")
    image_id = processor.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    inserted = int((inputs["input_ids"] == image_id).sum())
    counted = processor._get_num_multimodal_tokens(image_sizes=[[16, 16]])["num_image_tokens"]
    # 2x2 base patches + a 4x4 anyres grid with one newline per row (16 + 4)
    assert inserted == counted[0] == 24
    with torch.no_grad():
        features = model.get_image_features(
            pixel_values=inputs["pixel_values"], image_sizes=inputs["image_sizes"]
        ).pooler_output
        logits = model(**inputs).logits
    assert [f.shape[0] for f in features] == [inserted]
    assert logits.shape[:2] == inputs["input_ids"].shape
    assert torch.isfinite(logits).all()


def test_cli_refuses_a_non_empty_out(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    assert tiny_model.main(["--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "not empty" in err
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_cli_refuses_a_bad_hidden_size(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert tiny_model.main(["--out", str(tmp_path / "m"), "--hidden", "36"]) == 2
    assert "multiple of 8" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_cli_says_the_model_is_random(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert tiny_model.main(["--out", str(tmp_path / "m"), "--seed", "3", "--hidden", "16"]) == 0
    captured = capsys.readouterr()
    assert "RANDOM WEIGHTS" in captured.err and "mean nothing" in captured.err
    assert "saved to" in captured.out
