"""Active learning through the detector's training entry point, on cached features."""

from __future__ import annotations

import csv
import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from active_learning.loop import Purpose, derive_seed, initial_indices
from datagen.manifest import ManifestRow, read_manifest
from tests.UniversalFakeDetect.report.page_parts import page_parts
from UniversalFakeDetect import al_training, train
from UniversalFakeDetect.checkpoint import load_checkpoint
from UniversalFakeDetect.data.datasets import read_image
from UniversalFakeDetect.data.transforms import TransformConfig, eval_view

AL_FLAGS = [
    "--use_active_learning", "--preset", "demo", "--fix_backbone", "--batch_size", "16",
    "--num_samples_per_class", "6", "--query", "5", "--al_iter", "2", "--al_niter_warmup", "2",
    "--niter", "1", "--subsample_size", "0", "--gpu_ids", "-1",
]  # fmt: skip
BW_FLAGS = ["--acq_func", "9", "--balance_acquisition", "--use_weighted_loss"]


def run(tiny_root: Path, out: Path, *flags: str) -> int:
    return train.main(
        [
            "--data_root", str(tiny_root), *AL_FLAGS, *flags,
            "--checkpoints_dir", str(out / "ckpt"), "--result_folder", str(out / "res"),
        ]
    )  # fmt: skip


def pool_and_holdout(root: Path) -> tuple[list[ManifestRow], list[ManifestRow]]:
    """The pool (train split minus the held-out part) and the held-out rows, in source order
    (the default --holdout_fraction 0.1 and --seed 0)."""
    rows = [r for r in read_manifest(root) if r.split == "train"]
    return train.split_holdout(rows, 0.1, 0)


def brute_force_threshold(labels: np.ndarray, probs: np.ndarray) -> tuple[float, float]:
    """The most accurate threshold t (fake when p >= t) and its accuracy: every midpoint between
    neighbouring distinct probabilities, one below and one above them all; the lowest wins ties."""
    values = sorted(set(probs.tolist()))
    middles = [(a + b) / 2 for a, b in itertools.pairwise(values)]
    cuts = [values[0] - 1e-6, *middles, values[-1] + 1e-6]
    accuracies = [float(np.mean((probs >= t) == labels)) for t in cuts]
    best = max(accuracies)
    return cuts[accuracies.index(best)], best


def holdout_probabilities(checkpoint: Path, root: Path, rows: list[ManifestRow]) -> np.ndarray:
    """P(fake) of ``rows`` by the saved detector from the image files (no feature cache)."""
    detector, header = load_checkpoint(checkpoint)
    transform = TransformConfig(header["load_size"], header["crop_size"], flip=False)
    images = torch.stack([eval_view(read_image(root / r.path), transform) for r in rows])
    with torch.no_grad():
        return torch.sigmoid(detector.eval()(images)).double().numpy()


def test_loss_weighted_balanced_run_writes_curve_and_per_source_results(
    tiny_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tuned: list[tuple[np.ndarray, np.ndarray, float]] = []

    def spy(labels: np.ndarray, probs: np.ndarray) -> float:
        threshold = real_best_threshold(labels, probs)
        tuned.append((np.asarray(labels), np.asarray(probs, dtype=np.float64), threshold))
        return threshold

    real_best_threshold = al_training.best_threshold
    monkeypatch.setattr(al_training, "best_threshold", spy)
    assert run(tiny_root, tmp_path, *BW_FLAGS, "--name", "bw") == 0
    folder = tmp_path / "res" / "bw"
    names = {p.name for p in folder.iterdir()}
    assert {"al_results.json", "al_history.csv", "learning_curve.png", "metrics.json"} <= names
    history = json.loads((folder / "al_results.json").read_text())["history"]
    assert [h["labelled"] for h in history] == [12, 17, 22]
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["info"]["simulation_only"] is True
    assert metrics["info"]["labelled_images"] == 22
    check_queries_and_report(folder, tiny_root)

    # the threshold is tuned on the held-out images, as for normal training: the predictions
    # it saw are the saved detector's on exactly those images, and it is their best cut
    checkpoint = tmp_path / "ckpt" / "bw" / "loss_weighted_mean_std.safetensors"
    threshold = load_checkpoint(checkpoint)[1]["threshold"]
    (labels, probs, returned), *more = tuned
    assert not more and returned == threshold
    _, holdout = pool_and_holdout(tiny_root)
    np.testing.assert_array_equal(labels, [r.label for r in holdout])
    independent = holdout_probabilities(checkpoint, tiny_root, holdout)
    np.testing.assert_allclose(probs, independent, atol=5e-3)  # float16 cache vs float32
    best_cut, best_accuracy = brute_force_threshold(labels, probs)
    assert threshold == pytest.approx(best_cut, abs=1e-12)
    assert np.mean((probs >= threshold) == labels) == best_accuracy

    # and it is the one applied to the test images
    assert metrics["summary"]["tuned_threshold"] == threshold
    with (folder / "predictions.csv").open() as handle:
        predictions = list(csv.DictReader(handle))
    test_accuracy = np.mean(
        [(float(p["prob_fake"]) >= threshold) == int(p["label"]) for p in predictions]
    )
    assert metrics["summary"]["best_threshold_accuracy"] == pytest.approx(test_accuracy)


def check_queries_and_report(folder: Path, root: Path) -> None:
    """al_queries.csv lists the state's labelled pool images in order, with the iteration that
    added each; report.html shows the per-source table, the queries' class balance and
    thumbnails of the queried images."""
    labelled = torch.load(folder / "al_state.pt", weights_only=True)["labelled"].tolist()
    pool, _ = pool_and_holdout(root)
    with (folder / "al_queries.csv").open() as handle:
        queries = list(csv.DictReader(handle))
    assert [int(q["pool_index"]) for q in queries] == labelled
    assert [q["path"] for q in queries] == [pool[i].path for i in labelled]
    assert [int(q["label"]) for q in queries] == [pool[i].label for i in labelled]
    assert [int(q["iteration"]) for q in queries] == [0] * 12 + [1] * 5 + [2] * 5
    page = page_parts((folder / "report.html").read_text())
    sources = sorted({r.source for r in read_manifest(root) if r.split == "val"})
    assert [row[0] for row in page.tables["source-table"][1:]] == [*sources, "mean"]
    balance = [[int(c) for c in row[1:4]] for row in page.tables["query-table"][1:]]
    expected = [[len(q), q.count("0"), q.count("1")] for q in (
        [r["label"] for r in queries if r["iteration"] == str(i)] for i in range(3))]  # fmt: skip
    assert balance == expected
    alts = {i["alt"] for i in page.images if i["src"].startswith("data:image/jpeg;base64,")}
    assert alts & {q["path"] for q in queries if q["iteration"] == "2"}


def test_rerun_resumes_to_the_same_labelled_set(tiny_root: Path, tmp_path: Path) -> None:
    assert run(tiny_root, tmp_path / "a", "--acq_func", "bald", "--name", "r") == 0
    state = tmp_path / "a" / "res" / "r" / "al_state.pt"
    first = torch.load(state, weights_only=True)["labelled"].numpy()
    assert run(tiny_root, tmp_path / "a", "--acq_func", "bald", "--name", "r") == 0
    again = torch.load(state, weights_only=True)["labelled"].numpy()
    assert np.array_equal(first, again) and len(first) == 22


def test_bad_active_learning_flag_exits_2(tiny_root: Path, tmp_path: Path, capsys) -> None:
    assert run(tiny_root, tmp_path, "--query", "0") == 2
    assert "--query 0" in capsys.readouterr().err


@pytest.fixture(scope="module")
def root_with_unreadable_pool_images(
    tiny_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[int]]:
    """A copy of the tiny dataset with two truncated JPEGs in the pool: one the seed draws
    into the initial set when every image reads, one that would be a query candidate."""
    root = tmp_path_factory.mktemp("corrupt") / "data"
    shutil.copytree(tiny_root, root)
    pool, _ = pool_and_holdout(root)
    labels = np.array([r.label for r in pool])
    rng = np.random.default_rng(derive_seed(0, Purpose.INITIAL_SET))
    drawn = initial_indices(labels, 6, rng)
    victims = sorted([int(drawn[0]), int(np.setdiff1d(np.arange(len(pool)), drawn)[0])])
    for index in victims:
        path = root / pool[index].path
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])
    return root, victims


@pytest.mark.parametrize("features", ["cached", "no_cache"])
def test_unreadable_pool_images_are_left_out_and_counted(
    root_with_unreadable_pool_images, tmp_path: Path, capsys, features: str
) -> None:
    root, victims = root_with_unreadable_pool_images
    flags = [*BW_FLAGS, "--name", "u"] + (["--no_cache"] if features == "no_cache" else [])
    assert run(root, tmp_path, *flags) == 0
    folder = tmp_path / "res" / "u"
    results = json.loads((folder / "al_results.json").read_text())
    assert results["unreadable_pool_images"] == 2
    assert results["unreadable_pool_indices"] == victims
    assert [h["labelled"] for h in results["history"]] == [12, 17, 22]  # a full initial set
    labelled = torch.load(folder / "al_state.pt", weights_only=True)["labelled"].tolist()
    assert not set(labelled) & set(victims)  # never in the initial set, never queried
    pool, _ = pool_and_holdout(root)
    info = json.loads((folder / "metrics.json").read_text())["info"]
    assert info["unreadable_pool_images"] == 2
    assert info["unreadable_pool_paths"] == [pool[i].path for i in victims]
    err = capsys.readouterr().err
    assert "left 2 unreadable pool images out" in err
    assert "skipped unreadable images: {'pool': 2, 'test': 0}" in err


@pytest.mark.parametrize(
    ("flags", "recorded"),
    [
        (("--acq_func", "badge", "--badge_candidates", "40", "--balance_acquisition"),
         '"badge_candidates": 40'),
        (("--acq_func", "softmax_loss_weighted_mean_std", "--acq_temperature", "0.1"),
         '"acq_temperature": 0.1'),
    ],
)  # fmt: skip
def test_batch_aware_acquisitions_run_through_the_entry_point(
    tiny_root: Path, tmp_path: Path, flags: tuple[str, ...], recorded: str
) -> None:
    assert run(tiny_root, tmp_path, "--name", "b", *flags) == 0
    results = json.loads((tmp_path / "res" / "b" / "al_results.json").read_text())
    labelled = torch.load(tmp_path / "res" / "b" / "al_state.pt", weights_only=True)["labelled"]
    assert np.unique(labelled.numpy()).size == len(labelled) == 12 + 2 * 5
    assert f'"{flags[1]}"' in json.dumps(results) and recorded in json.dumps(results)
