from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from datagen.errors import UserError
from datagen.manifest import read_manifest, select
from LLaVA_Experiments import explain
from LLaVA_Experiments import finetune_lora as ft
from LLaVA_Experiments.model import (
    IGNORE_INDEX,
    QUESTION,
    encode_conversation,
    load_adapter,
    load_image,
    load_model,
    user_text,
)
from tests.LLaVA_Experiments.conftest import independent_prob_fake

ANSWERS = {0: "texture and lighting look natural\nAnswer: real", 1: "smooth noise\nAnswer: fake"}


def _records(root: Path, count: int = 16) -> list[dict]:
    rows = select(read_manifest(root), split="train")
    return [
        {
            "id": f"c{i}",
            "image": rows[i % len(rows)].path,
            "conversations": [
                {"from": "human", "value": user_text(QUESTION)},
                {"from": "gpt", "value": ANSWERS[rows[i % len(rows)].label]},
            ],
        }
        for i in range(count)
    ]


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text(json.dumps(records))
    return path


def test_only_assistant_tokens_are_labelled(tiny_llava: Path, tiny_data: Path) -> None:
    _, processor = load_model(str(tiny_llava), device="cpu")
    tok = processor.tokenizer
    record = _records(tiny_data, 1)[0]
    record["conversations"] += [
        {"from": "human", "value": "why"},
        {"from": "gpt", "value": "edges"},
    ]
    image = load_image(tiny_data, record["image"])
    batch = encode_conversation(processor, image, record)
    ids, labels = batch["input_ids"][0], batch["labels"][0]
    kept = labels != IGNORE_INDEX
    assert torch.equal(labels[kept], ids[kept])
    first_answer = tok(record["conversations"][1]["value"], add_special_tokens=False)
    expected = first_answer["input_ids"] + [tok.eos_token_id]
    expected += tok("edges", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert labels[kept].tolist() == expected
    image_id = tok.convert_tokens_to_ids("<image>")
    assert not kept[ids == image_id].any()
    assert tok.decode(ids[~kept]).count("ASSISTANT") == 2  # prompts are masked
    # truncation keeps every image token; a too short limit is an error
    image_count = int((ids == image_id).sum())
    short = encode_conversation(processor, image, record, max_length=int(ids.shape[0]) - 3)
    assert int((short["input_ids"] == image_id).sum()) == image_count
    last_image = int((ids == image_id).nonzero().max())
    with pytest.raises(UserError, match="max_length"):
        encode_conversation(processor, image, record, max_length=last_image)


def _mean_loss(model, processor, root: Path, records: list[dict]) -> float:
    losses = []
    with torch.no_grad():
        for record in records:
            image = load_image(root, record["image"])
            losses.append(float(model(**encode_conversation(processor, image, record)).loss))
    return sum(losses) / len(losses)


def test_lora_training_lowers_loss_and_reloads(
    tiny_llava: Path, other_llava: Path, tiny_data: Path, tmp_path: Path
) -> None:
    records = _records(tiny_data)
    model, processor = load_model(str(tiny_llava), device="cpu")
    before = _mean_loss(model, processor, tiny_data, records)
    config = ft.TrainConfig(lora_r=8, lora_alpha=16, lora_dropout=0.0, lr=2e-2, epochs=3,
                            grad_accum=2)  # fmt: skip
    out = tmp_path / "adapter"
    trained, losses = ft.train(model, processor, records, tiny_data, out, config)
    assert len(losses) == 24
    after = _mean_loss(trained, processor, tiny_data, records)
    assert after < 0.5 * before
    # only LoRA and projector parameters changed; no LoRA on the vision tower
    fresh, _ = load_model(str(tiny_llava), device="cpu")
    original = dict(fresh.named_parameters())
    changed_lora = changed_projector = 0
    for name, param in trained.named_parameters():
        assert not ("vision_tower" in name and "lora_" in name)
        if "lora_" in name:
            changed_lora += int(not torch.all(param == 0))  # lora_B starts at zero
            continue
        if "modules_to_save" in name:
            base = name.replace("base_model.model.", "").replace("modules_to_save.default.", "")
            changed_projector += int(not torch.equal(param, original[base]))
            continue
        base = name.replace("base_model.model.", "").replace("base_layer.", "")
        base = base.replace("original_module.", "")
        assert torch.equal(param, original[base]), name
    assert changed_lora > 0 and changed_projector > 0
    assert {"q_proj", "down_proj"} <= set(json.loads((out / "adapter_config.json").read_text())[
        "target_modules"].replace("(", "|").replace(")", "|").split("|"))  # fmt: skip
    # the saved adapter reloads to the same outputs
    reloaded = load_adapter(fresh, out).eval()
    record = records[0]
    batch = encode_conversation(processor, load_image(tiny_data, record["image"]), record)
    with torch.no_grad():
        assert torch.allclose(trained(**batch).logits, reloaded(**batch).logits, atol=1e-5)
    # an adapter from another base model is refused with a clear message
    other, _ = load_model(str(other_llava), device="cpu")
    with pytest.raises(UserError, match="another base model"):
        load_adapter(other, out)
    (out / "llava_base_model.json").unlink()  # without the fingerprint: peft's shape check
    with pytest.raises(UserError, match="does not fit this base model"):
        load_adapter(load_model(str(other_llava), device="cpu")[0], out)
    # explain runs with the adapter
    argv = ["--model", str(tiny_llava), "--adapter", str(out), "--data_root", str(tiny_data),
            "--name", "lora", "--results_dir", str(tmp_path), "--max_new_tokens", "2",
            "--device", "cpu", "--per_source", "2"]  # fmt: skip
    assert explain.main(argv) == 0
    assert json.loads((tmp_path / "lora" / "metrics.json").read_text())["info"]["adapter"] == str(
        out
    )
    assert explain.main([*argv[:2], "--adapter", str(tmp_path), *argv[4:]]) == 2


def test_cli_resume_matches_uninterrupted_run(
    tiny_llava: Path, tiny_data: Path, tmp_path: Path, capsys
) -> None:
    data = _write(tmp_path / "train.json", _records(tiny_data, 8))
    common = ["--model", str(tiny_llava), "--data", str(data), "--data_root", str(tiny_data),
              "--lora_r", "4", "--lora_alpha", "8", "--lora_dropout", "0.2", "--lr", "1e-2",
              "--device", "cpu", "--max_steps", "4", "--grad_accum", "2"]  # fmt: skip
    assert ft.main([*common, "--output_dir", str(tmp_path / "a")]) == 0
    assert ft.main([*common, "--output_dir", str(tmp_path / "c"), "--resume"]) == 2
    b = tmp_path / "b"
    argv_b = [*common, "--output_dir", str(b), "--save_steps", "1", "--save_total_limit", "2"]
    assert ft.main(argv_b) == 0
    assert sorted(p.name for p in b.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-3"]
    assert (b / "checkpoint-2" / "optimizer.pt").is_file()
    assert not list(b.glob(".saving-*"))
    assert ft.main(argv_b) == 2  # refuses to overwrite
    capsys.readouterr()
    assert ft.main([*argv_b, "--resume", "--lr", "2e-2"]) == 2  # other settings
    assert "--lr 0.01" in capsys.readouterr().err
    shutil.rmtree(b / "checkpoint-3")  # resume from step 2: two more steps with LoRA dropout
    assert ft.main([*argv_b, "--resume"]) == 0
    from safetensors.torch import load_file

    a_weights = load_file(tmp_path / "a" / "adapter_model.safetensors")
    b_weights = load_file(b / "adapter_model.safetensors")
    assert a_weights.keys() == b_weights.keys()
    for key in a_weights:
        assert torch.allclose(a_weights[key], b_weights[key], atol=1e-6), key
    info = json.loads((b / "training_info.json").read_text())
    assert info["steps"] == 4


def test_bad_conversations_are_clear_errors(tiny_data: Path, tmp_path: Path, capsys) -> None:
    records = _records(tiny_data, 2)
    records[1]["image"] = "train/missing.png"
    with pytest.raises(UserError, match=r"c1.*train/missing.png.*not found"):
        ft.load_dataset(_write(tmp_path / "a.json", records), tiny_data)
    records = _records(tiny_data, 2)
    records[0]["conversations"] = records[0]["conversations"][:1]
    with pytest.raises(UserError, match=r"c0.*assistant"):
        ft.load_dataset(_write(tmp_path / "b.json", records), tiny_data)
    (tmp_path / "c.json").write_text("{not json")
    argv = ["--data", str(tmp_path / "c.json"), "--data_root", str(tiny_data)]
    assert ft.main(argv) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_bfloat16_training_keeps_float32_masters(
    tiny_llava: Path, tiny_data: Path, tmp_path: Path
) -> None:
    model, processor = load_model(str(tiny_llava), device="cpu", dtype="bfloat16")
    records = _records(tiny_data, 4)
    config = ft.TrainConfig(lora_r=4, lora_alpha=8, lr=1e-2, max_steps=2, grad_accum=2)
    trained, losses = ft.train(model, processor, records, tiny_data, tmp_path / "bf16", config)
    assert len(losses) == 2 and all(loss == loss and loss < 1e4 for loss in losses)
    base = trained.get_base_model()
    assert getattr(base, "is_activation_checkpointing", None) or base.is_gradient_checkpointing
    from safetensors.torch import load_file

    saved = load_file(tmp_path / "bf16" / "adapter_model.safetensors")
    assert saved and all(t.dtype == torch.float32 for t in saved.values())
    assert {p.dtype for p in trained.parameters()} == {torch.bfloat16}
    rows = select(read_manifest(tiny_data), split="val")[:2]
    records = explain.explain_rows(trained, processor, tiny_data, rows, max_new_tokens=2)
    for record in records:  # bf16 inference: the same P(fake) as one unpadded forward pass
        expected = independent_prob_fake(trained, processor, tiny_data, record)
        assert record["prob_fake"] == pytest.approx(expected, abs=2e-2)
