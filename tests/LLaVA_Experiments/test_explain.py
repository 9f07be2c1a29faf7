from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from datagen.manifest import read_manifest, select
from LLaVA_Experiments import explain, explanations, generation, hub
from LLaVA_Experiments.four_bit import check_four_bit
from LLaVA_Experiments.images import load_image
from LLaVA_Experiments.loading import load_model, pick_device
from LLaVA_Experiments.prompts import build_prompt, parse_verdict, verdict_token_ids
from rfd_common.errors import UserError
from tests.LLaVA_Experiments.conftest import independent_prob_fake


def test_image_tokens_match_the_model(tiny_llava: Path, tiny_data: Path) -> None:
    model, processor = load_model(str(tiny_llava), device="cpu")
    rows = select(read_manifest(tiny_data), split="val")[:2]
    images = [load_image(tiny_data, r.path) for r in rows]
    inputs = processor(images=images, text=[build_prompt()] * 2, return_tensors="pt", padding=True)
    image_id = processor.tokenizer.convert_tokens_to_ids("<image>")
    assert (inputs["input_ids"] == image_id).sum(1).tolist() == [24, 24]
    assert model(**inputs).logits.shape[:2] == inputs["input_ids"].shape
    real_id, fake_id = verdict_token_ids(processor.tokenizer)
    assert processor.tokenizer.convert_ids_to_tokens([real_id, fake_id]) == ["real", "fake"]


def test_explain_cli_forced_answers_and_metrics(
    tiny_llava: Path, tiny_data: Path, tmp_path: Path
) -> None:
    code = explain.main(
        ["--model", str(tiny_llava), "--data_root", str(tiny_data), "--name", "tiny",
         "--results_dir", str(tmp_path), "--max_new_tokens", "4", "--batch_size", "4",
         "--force_answer", "--device", "cpu"]
    )  # fmt: skip
    assert code == 0
    out = tmp_path / "tiny"
    data = json.loads((out / "explanations.json").read_text())["images"]
    assert len(data) == 9
    model, processor = load_model(str(tiny_llava), device="cpu")
    for record in data:
        expected = independent_prob_fake(model, processor, tiny_data, record)
        assert record["prob_fake"] == pytest.approx(expected, abs=1e-5)
        assert record["forced"]
        assert record["verdict"] == ("fake" if record["prob_fake"] >= 0.5 else "real")
        assert parse_verdict(record["answer"])[1] == record["verdict"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert {m["source"] for m in metrics["sources"]} == {"real_photos", "stylegan3", "sd_v1"}
    by_source = {m["source"]: m for m in metrics["sources"]}
    assert by_source["stylegan3"]["ap"] is not None and by_source["real_photos"]["ap"] is None
    real_acc = sum(r["verdict"] == "real" for r in data if r["source"] == "real_photos") / 3
    assert by_source["real_photos"]["accuracy"] == pytest.approx(real_acc)
    text = (out / "explanations.txt").read_text()
    assert text.count("== ") == 9 and "P(fake)" in text
    assert (out / "explanations.csv").read_text().splitlines()[0].startswith("path,source")


def test_own_verdict_is_kept_when_given(tiny_llava: Path, tiny_data: Path, monkeypatch) -> None:
    model, processor = load_model(str(tiny_llava), device="cpu")
    rows = select(read_manifest(tiny_data), split="val")[:2]
    monkeypatch.setattr(
        explanations,
        "generate_texts",
        lambda *a, **k: ["noise. Answer: real", "edges. Answer: fake"],
    )
    records = explanations.explain_rows(model, processor, tiny_data, rows, batch_size=2)
    assert [r["verdict"] for r in records] == ["real", "fake"]
    assert [r["forced"] for r in records] == [False, False]
    assert [r["explanation"] for r in records] == ["noise.", "edges."]


def test_missing_weights_is_a_clear_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match=r"--model .*pass that folder with --model"):
        load_model(str(empty), device="cpu")
    with pytest.raises(UserError, match="folder not found"):
        load_model(str(tmp_path / "nope"), device="cpu")


def test_batched_probabilities_match_single_images(tiny_llava: Path, tiny_data: Path) -> None:
    model, processor = load_model(str(tiny_llava), device="cpu")
    rows = select(read_manifest(tiny_data), split="val")[:3]
    images = [load_image(tiny_data, r.path) for r in rows]
    contexts = [
        build_prompt() + suffix for suffix in (" Answer:", " noise edges Answer:", " Answer:")
    ]
    batched_probs = generation.fake_probabilities(model, processor, images, contexts)
    single = [
        generation.fake_probabilities(model, processor, [im], [c])[0]
        for im, c in zip(images, contexts, strict=True)
    ]
    assert batched_probs == pytest.approx(single, abs=1e-4)
    assert len(set(round(p, 6) for p in single)) > 1  # the image and text change the answer


def test_four_bit_needs_a_gpu(tiny_llava: Path, capsys) -> None:
    with pytest.raises(UserError, match="4bit"):
        load_model(str(tiny_llava), device="cpu", load_in_4bit=True)


def test_a_quantised_vision_tower_is_refused(tiny_llava: Path) -> None:
    """After a 4-bit load, a vision tower or projector layer in 4 bit is a clear error."""

    class Linear4bit(torch.nn.Linear):  # stands in for bitsandbytes' layer
        pass

    model, _ = load_model(str(tiny_llava), device="cpu")
    model.model.language_model.layers[0].mlp.up_proj = Linear4bit(4, 4)
    check_four_bit(model)  # the language model's layers are meant to be 4-bit
    model.model.vision_tower.encoder.layers[0].mlp.fc1 = Linear4bit(4, 4)
    with pytest.raises(UserError, match=r"must stay 16-bit.*vision_tower\.encoder\.layers\.0"):
        check_four_bit(model)


def test_cli_resumes_after_a_kill(
    tiny_llava: Path, tiny_data: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    argv = ["--model", str(tiny_llava), "--data_root", str(tiny_data), "--name", "run",
            "--results_dir", str(tmp_path), "--max_new_tokens", "3", "--batch_size", "2",
            "--device", "cpu"]  # fmt: skip
    assert explain.main([*argv[:5], "uninterrupted", *argv[6:]]) == 0
    full = json.loads((tmp_path / "uninterrupted" / "explanations.json").read_text())["images"]
    assert not (tmp_path / "uninterrupted" / explain.JOURNAL_NAME).exists()

    real_batch = explanations.explain_batch
    asked: list[str] = []
    kill = [True]

    def dies_on_third_batch(model, processor, root, rows, *rest):
        if kill[0] and len(asked) == 4:
            raise KeyboardInterrupt
        asked.extend(r.path for r in rows)
        return real_batch(model, processor, root, rows, *rest)

    monkeypatch.setattr(explanations, "explain_batch", dies_on_third_batch)
    assert explain.main(argv) == 130  # as after Ctrl-C
    assert not (tmp_path / "run" / "explanations.json").exists()
    assert (tmp_path / "run" / explain.JOURNAL_NAME).is_file()
    # other settings are refused while the unfinished run is there
    assert explain.main([*argv, "--max_new_tokens", "5"]) == 2
    assert "--restart" in capsys.readouterr().err
    asked.clear()
    kill[0] = False
    assert explain.main(argv) == 0
    assert len(asked) == 5  # 9 images, 4 done before the kill
    resumed = json.loads((tmp_path / "run" / "explanations.json").read_text())["images"]
    assert [r["path"] for r in resumed] == [r["path"] for r in full]
    for a, b in zip(resumed, full, strict=True):
        assert a["verdict"] == b["verdict"] and a["generated"] == b["generated"]
        assert a["prob_fake"] == pytest.approx(b["prob_fake"], abs=1e-5)
    assert not (tmp_path / "run" / explain.JOURNAL_NAME).exists()
    assert (tmp_path / "run" / "roc.png").is_file()


def test_uncached_hub_model_fails_fast_offline(monkeypatch) -> None:
    """No weights in the cache and no Hub: one clear message, not minutes of retries."""
    real_check = hub.hub_unreachable
    calls = []
    monkeypatch.setattr(hub, "hub_unreachable", lambda mid: calls.append(mid) or "down")
    with pytest.raises(UserError, match=r"not in the Hugging Face cache .*\(down\).*hf download"):
        load_model("rfd-tests/no-such-llava", device="cpu")
    assert calls == ["rfd-tests/no-such-llava"]
    # the real check answers (network error, offline mode or unknown repo) without downloading
    assert real_check("rfd-tests/no-such-llava", timeout=5) is not None


def test_bad_device_is_a_clear_error(monkeypatch) -> None:
    with pytest.raises(UserError, match="--device gpu0: not a device name"):
        pick_device("gpu0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="--device cuda: no CUDA GPU is visible here"):
        pick_device("cuda")
    assert pick_device(None).type == "cpu"
