from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from datagen.manifest import read_manifest, select
from LLaVA_Experiments import explain, explanations, loading, training
from LLaVA_Experiments import finetune_lora as ft
from LLaVA_Experiments.adapters import add_lora, load_adapter
from LLaVA_Experiments.conversations import load_dataset, single_turn
from LLaVA_Experiments.encoding import (
    IGNORE_INDEX,
    check_lengths,
    conversation_length,
    encode_conversation,
    image_token_count,
)
from LLaVA_Experiments.images import image_size, load_image
from LLaVA_Experiments.loading import load_model, load_processor
from LLaVA_Experiments.prompts import QUESTION, build_prompt, user_text
from LLaVA_Experiments.recipe import TrainConfig
from rfd_common.errors import UserError
from tests.LLaVA_Experiments.conftest import independent_prob_fake

ANSWERS = {0: "texture and lighting look natural\nAnswer: real", 1: "smooth noise\nAnswer: fake"}


def _records(root: Path, count: int = 16) -> list[dict]:
    rows = select(read_manifest(root), split="train")
    picked = [rows[i % len(rows)] for i in range(count)]
    return [
        single_turn(f"c{i}", row.path, QUESTION, ANSWERS[row.label]) for i, row in enumerate(picked)
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
    config = TrainConfig(lora_r=8, lora_alpha=16, lora_dropout=0.0, lr=2e-2, epochs=3,
                            grad_accum=2)  # fmt: skip
    out = tmp_path / "adapter"
    trained, losses = training.train(model, processor, records, tiny_data, out, config)
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
        load_dataset(_write(tmp_path / "a.json", records), tiny_data)
    records = _records(tiny_data, 2)
    records[0]["conversations"] = records[0]["conversations"][:1]
    with pytest.raises(UserError, match=r"c0.*assistant"):
        load_dataset(_write(tmp_path / "b.json", records), tiny_data)
    (tmp_path / "c.json").write_text("{not json")
    argv = ["--data", str(tmp_path / "c.json"), "--data_root", str(tiny_data)]
    assert ft.main(argv) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_bfloat16_training_keeps_float32_masters(
    tiny_llava: Path, tiny_data: Path, tmp_path: Path
) -> None:
    model, processor = load_model(str(tiny_llava), device="cpu", dtype="bfloat16")
    records = _records(tiny_data, 4)
    config = TrainConfig(lora_r=4, lora_alpha=8, lr=1e-2, max_steps=2, grad_accum=2)
    trained, losses = training.train(
        model, processor, records, tiny_data, tmp_path / "bf16", config
    )
    assert len(losses) == 2 and all(loss == loss and loss < 1e4 for loss in losses)
    base = trained.get_base_model()
    assert getattr(base, "is_activation_checkpointing", None) or base.is_gradient_checkpointing
    from safetensors.torch import load_file

    saved = load_file(tmp_path / "bf16" / "adapter_model.safetensors")
    assert saved and all(t.dtype == torch.float32 for t in saved.values())
    assert {p.dtype for p in trained.parameters()} == {torch.bfloat16}
    rows = select(read_manifest(tiny_data), split="val")[:2]
    records = explanations.explain_rows(trained, processor, tiny_data, rows, max_new_tokens=2)
    for record in records:  # bf16 inference: the same P(fake) as one unpadded forward pass
        expected = independent_prob_fake(trained, processor, tiny_data, record)
        assert record["prob_fake"] == pytest.approx(expected, abs=2e-2)


def _metaspace_processor(processor):
    """``processor`` with a sentencepiece-like tokenizer (BPE over ``▁``-joined words, byte
    fallback, ``<s>`` prepended), as Vicuna's, trained in memory."""
    from tokenizers import Tokenizer, models, normalizers, processors, trainers
    from transformers import LlavaNextProcessor, PreTrainedTokenizerFast

    from LLaVA_Experiments.tiny_model import WORDS

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    specials = ["<unk>", "<s>", "</s>", "<pad>", "<image>"]
    tok.train_from_iterator([WORDS], trainers.BpeTrainer(vocab_size=300, special_tokens=specials,
                                                         show_progress=False))  # fmt: skip
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
        pad_token="<pad>", extra_special_tokens={"image_token": "<image>"},
    )  # fmt: skip
    return LlavaNextProcessor(
        image_processor=processor.image_processor, tokenizer=fast, patch_size=4,
        vision_feature_select_strategy="default", num_additional_image_tokens=1,
    )  # fmt: skip


def test_conversation_length_counts_what_encode_makes(tiny_llava: Path, tiny_data: Path) -> None:
    """The length check (image size + tokenizer, no pixels) equals the encoded length, with the
    word-level test tokenizer and with a sentencepiece-like one (non-ASCII text too)."""
    from PIL import Image

    _, processor = load_model(str(tiny_llava), device="cpu")
    record = _records(tiny_data, 1)[0]
    two_turns = {**record, "conversations": [*record["conversations"],
                 {"from": "human", "value": "why?"},
                 {"from": "gpt", "value": "édges  and\nnoise"}]}  # fmt: skip
    for proc in (processor, _metaspace_processor(processor)):
        for size in ((16, 16), (8, 16), (16, 8), (12, 12), (5, 9)):
            image = Image.new("RGB", (size[1], size[0]))
            for rec in (record, two_turns):
                encoded = encode_conversation(proc, image, rec, max_length=10_000)
                assert conversation_length(proc, rec, size) == encoded["input_ids"].shape[1]


def _long_records(root: Path) -> list[dict]:
    records = _records(root, 3)
    records[1]["id"] = "too-long"
    records[1]["conversations"][1]["value"] = "noise " * 40 + "\nAnswer: fake"
    return records


def test_too_long_conversations_are_found_before_training(
    tiny_llava: Path, tiny_data: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    processor = load_processor(str(tiny_llava))
    records = _long_records(tiny_data)
    lengths = [conversation_length(processor, r, image_size(tiny_data, r["image"]))
               for r in records]  # fmt: skip
    limit = max(lengths[0], lengths[2])
    assert lengths[1] > limit
    message = rf"--max_length {limit} tokens.*'too-long' \({lengths[1]} tokens\)"
    with pytest.raises(UserError, match=message):
        check_lengths(records, tiny_data, processor, limit)
    kept, dropped = check_lengths(records, tiny_data, processor, limit, drop=True)
    assert [r["id"] for r in kept] == ["c0", "c2"]
    assert dropped == [{"id": "too-long", "tokens": lengths[1]}]
    assert check_lengths(records, tiny_data, processor, lengths[1]) == (records, [])
    # the CLI refuses before loading the weights, and leaves out with --drop_too_long
    data = _write(tmp_path / "train.json", records)
    argv = ["--model", str(tiny_llava), "--data", str(data), "--data_root", str(tiny_data),
            "--device", "cpu", "--lora_r", "2", "--lora_alpha", "4", "--grad_accum", "1",
            "--max_length", str(limit), "--output_dir", str(tmp_path / "out")]  # fmt: skip
    real_load = loading.load_model
    loaded = []
    monkeypatch.setattr(
        loading, "load_model", lambda *a, **k: loaded.append(1) or real_load(*a, **k)
    )
    assert ft.main(argv) == 2
    err = capsys.readouterr().err
    assert f"'too-long' ({lengths[1]} tokens)" in err and "--drop_too_long" in err
    assert not loaded and not (tmp_path / "out").exists()
    assert ft.main([*argv, "--drop_too_long"]) == 0
    assert "too-long" in capsys.readouterr().err
    info = json.loads((tmp_path / "out" / "training_info.json").read_text())
    assert info["dropped_too_long"] == dropped and info["conversations"] == 2
    assert info["steps"] == 2 and info["skipped"] == []


def test_step_without_labelled_tokens_is_skipped(
    tiny_llava: Path, tiny_data: Path, tmp_path: Path, monkeypatch
) -> None:
    """A conversation whose answer is cut to nothing (all labels -100) gives no step: the
    adapter stays as the previous step left it (no AdamW momentum update), finite, and no NaN
    loss is recorded."""
    model, processor = load_model(str(tiny_llava), device="cpu", dtype="bfloat16")
    short, long_ = _records(tiny_data, 2)
    long_["id"] = "cut"
    long_["conversations"][0]["value"] = user_text(QUESTION + " texture edges noise smooth")
    image = load_image(tiny_data, long_["image"])
    labels = encode_conversation(processor, image, long_)["labels"][0]
    cut = int((labels != IGNORE_INDEX).nonzero().min())  # keeps none of long_'s answer
    order = training.epoch_order(2, 0, 0)
    records = [short, long_] if order[0] == 0 else [long_, short]  # the labelled one first
    config = TrainConfig(lora_r=4, lora_alpha=8, lr=0.2, mm_projector_lr=0.2, max_steps=2,
                            grad_accum=1, max_length=cut, lora_dropout=0.0,
                            warmup_ratio=0.0)  # fmt: skip
    wrapped: list = []  # the peft model train() builds, to look at after each step
    real_add_lora = training.add_lora
    monkeypatch.setattr(
        training, "add_lora", lambda m, c: wrapped.append(real_add_lora(m, c)) or wrapped[0]
    )
    snapshots: list[dict[str, torch.Tensor]] = []

    def snapshot(step: int, loss: float | None) -> None:
        params = wrapped[0].named_parameters()
        snapshots.append({n: p.detach().clone() for n, p in params if p.requires_grad})

    _, losses = training.train(model, processor, records, tiny_data, tmp_path / "a", config,
                               on_step=snapshot)  # fmt: skip
    assert len(losses) == 1 and all(map(math.isfinite, losses))
    assert len(snapshots) == 2
    for name, after in snapshots[1].items():
        assert torch.isfinite(after).all(), name
        assert torch.equal(after, snapshots[0][name]), name  # step 2 was not applied
    text = (tmp_path / "a" / "training_info.json").read_text()
    info = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in training_info"))
    assert info["steps"] == 2 and info["skipped"] == [
        {"id": "cut", "step": 2, "why": "no labelled token"}
    ]


def test_default_max_length_fits_every_256px_conversation() -> None:
    """1,176 image tokens (real LLaVA-1.6 processing) + the longest prompt + the longest answer
    make_train_data can produce fit the default --max_length with a margin."""
    from LLaVA_Experiments import make_train_data
    from LLaVA_Experiments.full_size import full_size_processor

    image_tokens = image_token_count(full_size_processor(), 256, 256)
    assert image_tokens == 1176
    # any tokenizer spends at most one token per ASCII character, plus <s> and one
    # word-boundary marker per text piece around <image>
    prompt = build_prompt(QUESTION)
    assert prompt.isascii()
    prompt_bound = len(prompt) - len("<image>") + 1 + 3
    answer_bound = make_train_data.build_parser().parse_args([]).max_new_tokens + 8 + 1
    needed = image_tokens + prompt_bound + answer_bound
    default = TrainConfig().max_length
    assert ft.build_parser().parse_args(["--data", "x"]).max_length == default
    assert needed + 128 <= default, (needed, default)


def test_recipe_defaults_and_projector_param_group(tiny_llava: Path) -> None:
    args = ft.build_parser().parse_args(["--data", "x"])
    assert (args.grad_accum, args.lr, args.mm_projector_lr) == (8, 2e-4, 2e-5)
    assert (args.lora_r, args.lora_alpha, args.lora_dropout) == (128, 256, 0.05)
    config = TrainConfig(lora_r=4, lora_alpha=8)
    assert config.grad_accum == 8 and config.mm_projector_lr == 2e-5
    model, _ = load_model(str(tiny_llava), device="cpu")
    peft_model = add_lora(model, config)
    optimizer = training.build_optimizer(peft_model, config)
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert set(groups) == {"lora", "projector"}
    assert (groups["lora"]["lr"], groups["projector"]["lr"]) == (2e-4, 2e-5)
    trainable = {n: p for n, p in peft_model.named_parameters() if p.requires_grad}
    projector = {id(p) for n, p in trainable.items() if "multi_modal_projector" in n}
    lora = {id(p) for n, p in trainable.items() if "lora_" in n}
    assert projector and {id(p) for p in groups["projector"]["params"]} == projector
    assert lora and {id(p) for p in groups["lora"]["params"]} == lora


def _setup_snapshot(model) -> dict:
    """What the training setup decided: each parameter's dtype and trainability, and how every
    checkpointed layer recomputes (None: not checkpointed)."""
    layers = {}
    for name, module in model.named_modules():
        if getattr(module, "gradient_checkpointing", False):
            func = module._gradient_checkpointing_func
            layers[name] = getattr(func, "keywords", {}).get("use_reentrant", "unset")
    params = {n: (str(p.dtype), p.requires_grad) for n, p in model.named_parameters()}
    return {"params": params, "checkpointed": layers}


def test_four_bit_runs_are_set_up_the_same_fresh_and_resumed(
    tiny_llava: Path, tiny_data: Path, tmp_path: Path, monkeypatch
) -> None:
    """--load_in_4bit (simulated: bitsandbytes needs a GPU) goes through peft's
    prepare_model_for_kbit_training with non-reentrant checkpointing, on a fresh run and on a
    resumed one alike."""
    import peft

    real_load, real_prepare, real_optimizer = (
        loading.load_model, peft.prepare_model_for_kbit_training, training.build_optimizer
    )  # fmt: skip
    calls: list[tuple] = []
    setups: list[dict] = []

    def load_4bit(model_id, device, load_in_4bit, dtype, processor=None):
        assert load_in_4bit
        model, processor = real_load(model_id, device, False, dtype, processor=processor)
        model.is_loaded_in_4bit = True  # what peft looks at
        return model, processor

    def prepare(model, **kwargs):
        calls.append(("prepare", tuple(sorted(kwargs.items()))))
        return real_prepare(model, **kwargs)

    def optimizer(model, config):
        setups.append(_setup_snapshot(model))
        return real_optimizer(model, config)

    monkeypatch.setattr(loading, "load_model", load_4bit)
    monkeypatch.setattr(peft, "prepare_model_for_kbit_training", prepare)
    monkeypatch.setattr(training, "build_optimizer", optimizer)
    data = _write(tmp_path / "train.json", _records(tiny_data, 4))
    out = tmp_path / "out"
    argv = ["--model", str(tiny_llava), "--data", str(data), "--data_root", str(tiny_data),
            "--device", "cpu", "--dtype", "bfloat16", "--lora_r", "2", "--lora_alpha", "4",
            "--grad_accum", "1", "--max_steps", "2", "--save_steps", "1", "--load_in_4bit",
            "--output_dir", str(out)]  # fmt: skip
    assert ft.main(argv) == 0
    assert ft.main([*argv, "--resume", str(out / "checkpoint-1")]) == 0
    kwargs = (("gradient_checkpointing_kwargs", {"use_reentrant": False}),
              ("use_gradient_checkpointing", True))  # fmt: skip
    assert calls == [("prepare", kwargs)] * 2
    fresh, resumed = setups
    assert fresh == resumed
    assert fresh["checkpointed"] and set(fresh["checkpointed"].values()) == {False}
    # resuming a 4-bit run without --load_in_4bit is refused
    assert ft.main([a for a in argv if a != "--load_in_4bit"]
                   + ["--resume", str(out / "checkpoint-1")]) == 2  # fmt: skip


def test_what_ranks_skipped_is_merged_once_each_in_step_order() -> None:
    from LLaVA_Experiments.training import merge_skipped

    norm = {"step": 3, "why": "gradient norm nan"}  # every rank records the same step
    rank0 = [{"id": "b", "step": 2, "why": "no labelled token"}, norm]
    rank1 = [{"id": "a", "step": 2, "why": "loss nan"}, norm, {"id": "c", "step": 1, "why": "x"}]
    merged = merge_skipped([rank0, rank1])
    assert merged == [rank1[2], rank1[0], rank0[0], norm]
    assert merge_skipped([merged, merged]) == merged  # a resumed run restores the merged list
