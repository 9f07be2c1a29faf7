"""Active learning through the detector's training entry point, on cached features."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from UniversalFakeDetect import train
from UniversalFakeDetect.checkpoint import load_checkpoint

AL_FLAGS = [
    "--use_active_learning", "--preset", "demo", "--fix_backbone", "--batch_size", "16",
    "--num_samples_per_class", "6", "--query", "5", "--al_iter", "2", "--al_niter_warmup", "2",
    "--niter", "1", "--subsample_size", "0", "--gpu_ids", "-1",
]  # fmt: skip


def run(tiny_root: Path, out: Path, *flags: str) -> int:
    return train.main(
        [
            "--data_root", str(tiny_root), *AL_FLAGS, *flags,
            "--checkpoints_dir", str(out / "ckpt"), "--result_folder", str(out / "res"),
        ]
    )  # fmt: skip


def test_loss_weighted_balanced_run_writes_curve_and_per_source_results(tiny_root, tmp_path):
    flags = ["--acq_func", "9", "--balance_acquisition", "--use_weighted_loss", "--name", "bw"]
    assert run(tiny_root, tmp_path, *flags) == 0
    folder = tmp_path / "res" / "bw"
    names = {p.name for p in folder.iterdir()}
    assert {"al_results.json", "al_history.csv", "learning_curve.png", "metrics.json"} <= names
    history = json.loads((folder / "al_results.json").read_text())["history"]
    assert [h["labelled"] for h in history] == [12, 17, 22]
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["info"]["simulation_only"] is True
    assert metrics["info"]["labelled_images"] == 22
    checkpoint = tmp_path / "ckpt" / "bw" / "loss_weighted_mean_std.safetensors"
    threshold = load_checkpoint(checkpoint)[1]["threshold"]
    assert 0.0 <= threshold <= 1.0  # tuned on the held-out images, as for normal training
    assert metrics["summary"]["tuned_threshold"] == threshold
    assert metrics["summary"]["best_threshold_accuracy"] is not None


def test_rerun_resumes_to_the_same_labelled_set(tiny_root: Path, tmp_path: Path) -> None:
    assert run(tiny_root, tmp_path / "a", "--acq_func", "bald", "--name", "r") == 0
    state = tmp_path / "a" / "res" / "r" / "al_state.pt"
    import torch

    first = torch.load(state, weights_only=True)["labelled"].numpy()
    assert run(tiny_root, tmp_path / "a", "--acq_func", "bald", "--name", "r") == 0
    again = torch.load(state, weights_only=True)["labelled"].numpy()
    assert np.array_equal(first, again) and len(first) == 22


def test_bad_active_learning_flag_exits_2(tiny_root: Path, tmp_path: Path, capsys) -> None:
    assert run(tiny_root, tmp_path, "--query", "0") == 2
    assert "--query 0" in capsys.readouterr().err
