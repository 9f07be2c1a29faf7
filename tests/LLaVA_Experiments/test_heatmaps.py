"""``explain --heatmap_checkpoint``: the detector's overlay beside each explanation."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from LLaVA_Experiments import explain
from tests.UniversalFakeDetect.heatmaps.tiny_models import tiny_checkpoint


def test_explain_writes_heat_maps_beside_the_explanations(
    tiny_llava: Path, tiny_data: Path, tmp_path: Path
) -> None:
    ckpt = tiny_checkpoint(tmp_path / "detector.safetensors")
    argv = ["--model", str(tiny_llava), "--data_root", str(tiny_data), "--name", "maps",
            "--results_dir", str(tmp_path), "--max_new_tokens", "2", "--per_source", "1",
            "--device", "cpu", "--heatmap_checkpoint", str(ckpt)]  # fmt: skip
    assert explain.main(argv) == 0
    out = tmp_path / "maps"
    records = json.loads((out / "explanations.json").read_text())["images"]
    assert len(records) == 3
    for record in records:
        assert record["heatmap"] == f"heatmaps/{record['path']}.png"
        assert record["heatmap_map"] == f"heatmaps/{record['path']}.npy"
        assert record["heatmap_class"] == ("fake" if record["detector_prob_fake"] >= 0.5
                                           else "real")  # fmt: skip
        with (
            Image.open(out / record["heatmap"]) as overlay,
            Image.open(tiny_data / record["path"]) as image,
        ):
            assert overlay.size == image.size
        heat = np.load(out / record["heatmap_map"])
        assert heat.shape == (16, 16) and np.isfinite(heat).all()
    with open(out / "explanations.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["heatmap"] for r in rows] == [r["heatmap"] for r in records]
    assert "detector_prob_fake" in rows[0]
    assert (out / "explanations.txt").read_text().count("heat map: heatmaps/") == 3


@pytest.mark.parametrize(
    ("name", "needle"),
    [("no.safetensors", "file not found"), ("notes.txt", "expected a detector checkpoint")],
)
def test_a_bad_heatmap_checkpoint_stops_first(
    tiny_llava: Path, tiny_data: Path, tmp_path: Path, capsys, name: str, needle: str
) -> None:
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    argv = ["--model", str(tiny_llava), "--data_root", str(tiny_data), "--name", "none",
            "--results_dir", str(tmp_path), "--device", "cpu",
            "--heatmap_checkpoint", str(tmp_path / name)]  # fmt: skip
    assert explain.main(argv) == 2
    assert f"--heatmap_checkpoint {tmp_path / name}: {needle}" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()


def test_help_lists_the_flag() -> None:
    assert "--heatmap_checkpoint PATH" in explain.build_parser().format_help()
