from __future__ import annotations

import json
from pathlib import Path

from datagen.manifest import read_manifest
from LLaVA_Experiments import make_train_data as mtd
from LLaVA_Experiments.prompts import QUESTION, guided_question, parse_verdict


def _fake_generator(calls: list[str], wrong: set[int]):
    """Answers from the guided prompt's truth; the answer to the n-th prompt in ``wrong`` lies."""

    def generate(images, prompts):
        out = []
        for prompt in prompts:
            calls.append(prompt)
            word = "fake" if "is fake" in prompt else "real"
            if len(calls) - 1 in wrong:
                word = "real" if word == "fake" else "fake"
            out.append(f"the edges and noise show it.  Answer : {word}.")
        return out

    return generate


def test_conversations_valid_without_labels_and_resume(tiny_data: Path, tmp_path: Path) -> None:
    rows = mtd.sample_training_rows(read_manifest(tiny_data), per_source=3, seed=0)
    assert len(rows) == 9 and {r.split for r in rows} == {"train"}
    assert rows == mtd.sample_training_rows(read_manifest(tiny_data), per_source=3, seed=0)
    out = tmp_path / "train.json"
    calls: list[str] = []
    counts = mtd.build_conversations(
        rows[:6], tiny_data, out, _fake_generator(calls, wrong={1}), batch_size=4
    )
    assert (counts.written, counts.dropped, counts.skipped) == (5, 1, 0)
    data = json.loads(out.read_text())
    assert len(data) == 5
    for record in data:
        assert set(record) >= {"id", "image", "conversations"}
        assert (tiny_data / record["image"]).is_file()
        human, gpt = record["conversations"]
        assert human == {"from": "human", "value": "<image>\n" + QUESTION}
        guided = guided_question(next(r for r in rows if r.path == record["image"]))
        assert guided not in human["value"] and "This image is" not in human["value"]
        assert record["source"] not in human["value"]
        truth = "fake" if "stylegan3" in record["image"] or "sd_v1" in record["image"] else "real"
        assert gpt["from"] == "gpt" and gpt["value"].endswith(f"\nAnswer: {truth}")
        assert parse_verdict(gpt["value"])[1] == truth
    dropped = json.loads(mtd.dropped_path(out).read_text())
    assert len(dropped) == 1 and dropped[0]["answer"].endswith("Answer : fake.")
    assert dropped[0]["label"] == "real" and mtd.dropped_path(out).name == "train.dropped.json"
    # resume: only the three new rows are asked; the dropped one only with retry_dropped
    calls.clear()
    counts = mtd.build_conversations(rows, tiny_data, out, _fake_generator(calls, set()))
    assert (counts.written, counts.dropped, counts.skipped) == (3, 0, 6)
    assert len(calls) == 3 and dropped[0]["id"] not in "".join(calls)
    assert counts.by_source == {"stylegan3": {"written": 3, "dropped": 0}}
    calls.clear()
    counts = mtd.build_conversations(
        rows, tiny_data, out, _fake_generator(calls, set()), retry_dropped=True
    )
    assert (counts.written, counts.dropped, counts.skipped) == (1, 0, 8) and len(calls) == 1
    assert json.loads(mtd.dropped_path(out).read_text()) == []
    ids = [r["id"] for r in json.loads(out.read_text())]
    assert len(ids) == len(set(ids)) == 9


def test_cli_with_tiny_model_writes_json(tiny_llava: Path, tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "gen.json"
    argv = ["--model", str(tiny_llava), "--data_root", str(tiny_data), "--out", str(out),
            "--per_source", "1", "--max_new_tokens", "3", "--device", "cpu"]  # fmt: skip
    assert mtd.main(argv) == 0
    data = json.loads(out.read_text())
    assert isinstance(data, list)  # a random model rarely ends with the right answer
    for record in data:
        assert record["conversations"][0]["value"] == "<image>\n" + QUESTION


def test_cli_bad_input_exits_2(tmp_path: Path, capsys) -> None:
    assert mtd.main(["--data_root", str(tmp_path / "nowhere")]) == 2
    assert "folder not found" in capsys.readouterr().err
