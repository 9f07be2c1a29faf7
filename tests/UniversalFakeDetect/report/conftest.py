"""Run folders written by hand, as the runs write them, for the report's tests."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SOURCES = {"camera": 0, "scans": 0, "gan-a": 1, "diffusion-b": 1}  # source -> label
IMAGES_PER_SOURCE = 12


def write_image(path: Path, seed: int, size: int = 40) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=90)


def write_png(path: Path, seed: int) -> None:
    pixels = np.random.default_rng(seed).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def predictions(seed: int = 0) -> list[dict]:
    """Scores for every image: reals mostly low, fakes mostly high, with mistakes and ties."""
    rng = np.random.default_rng(seed)
    rows = []
    for source, label in SOURCES.items():
        for i in range(IMAGES_PER_SOURCE):
            prob = float(rng.beta(2, 5) if label == 0 else rng.beta(5, 2))
            rows.append({"path": f"ImageData/val/{source}/{i:03d}.jpg", "source": source,
                         "label": label, "prob_fake": round(prob, 6)})  # fmt: skip
    rows[0]["prob_fake"] = rows[1]["prob_fake"] = 0.9  # a tie among the reals' mistakes
    rows[2]["prob_fake"] = 0.5  # exactly at the threshold: called fake, a mistake
    return rows


def metrics_document(rows: list[dict], data_root: Path | None) -> dict:
    """A metrics.json of the shape evaluation/report.py writes (values made up but distinct)."""
    sources = []
    for k, (source, label) in enumerate(SOURCES.items()):
        sources.append({
            "source": source, "family": "real" if label == 0 else "gan", "label": label,
            "images": IMAGES_PER_SOURCE, "accuracy": 0.5 + 0.1 * k,
            "ap": None if label == 0 else 0.61 + 0.1 * k,
            "roc_auc": None if label == 0 else 0.72 + 0.05 * k,
            "best_threshold_accuracy": 0.4 + 0.1 * k, "seen_in_training": k % 2 == 0,
        })  # fmt: skip
    info = {"name": "handmade", "arch": "Imagenet:resnet18", "split": "val", "checkpoint": "x"}
    if data_root is not None:
        info["data_root"] = str(data_root)
    summary = {
        "images": len(rows), "accuracy": 0.8125, "real_accuracy": 0.75, "fake_accuracy": 0.875,
        "mean_source_accuracy": 0.65, "mean_ap": 0.76, "mean_roc_auc": 0.845, "ece": 0.05,
        "threshold": 0.5, "tuned_threshold": 0.47, "best_threshold_accuracy": 0.83,
        "unreadable_images": 0,
    }  # fmt: skip
    return {"info": info, "summary": summary, "sources": sources}


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """A dataset root holding every image predictions() names."""
    root = tmp_path / "data"
    for k, row in enumerate(predictions()):
        write_image(root / row["path"], seed=k)
    return root


@pytest.fixture
def run_folder(tmp_path: Path, dataset: Path) -> Path:
    """The results folder of a test run: metrics, predictions and both plots."""
    folder = tmp_path / "results" / "handmade"
    folder.mkdir(parents=True)
    rows = predictions()
    (folder / "metrics.json").write_text(json.dumps(metrics_document(rows, dataset)))
    write_csv(folder / "predictions.csv", rows)
    write_png(folder / "roc.png", 1)
    write_png(folder / "accuracy_by_source.png", 2)
    return folder


def al_history() -> list[dict]:
    """Three iterations: the initial set of 4 + 4, then queries of 6 (5 fake) and 6 (2 fake)."""
    counts = [(4, 4), (5, 9), (9, 11)]  # (real, fake) labelled after each iteration
    return [
        {"iteration": i, "labelled": r + f, "labelled_real": r, "labelled_fake": f,
         "queried": 0 if i == 0 else r + f - sum(counts[i - 1]), "val_acc": 0.6 + 0.1 * i,
         "val_ap": 0.7 + 0.1 * i}
        for i, (r, f) in enumerate(counts)
    ]  # fmt: skip


@pytest.fixture
def al_folder(run_folder: Path, dataset: Path) -> Path:
    """An active-learning run: the test run's files plus the loop's results and queries."""
    history = al_history()
    document = {"strategy": "loss_weighted_mean_std", "config": {"query": 6, "al_iter": 2},
                "note": "simulation", "history": history, "final": history[-1]}  # fmt: skip
    (run_folder / "al_results.json").write_text(json.dumps(document))
    write_png(run_folder / "learning_curve.png", 3)
    pool = [dict(path=f"ImageData/train/{s}/{i:03d}.jpg", source=s, label=label)
            for s, label in SOURCES.items() for i in range(6)]  # fmt: skip
    rng = np.random.default_rng(5)
    by_class = [[p for p in pool if p["label"] == c] for c in (0, 1)]
    for items in by_class:
        rng.shuffle(items)
    queries, real, fake = [], 0, 0
    for record in history:  # each iteration adds as many of each class as its counts say
        added = by_class[0][real : record["labelled_real"]]
        added += by_class[1][fake : record["labelled_fake"]]
        real, fake = record["labelled_real"], record["labelled_fake"]
        rng.shuffle(added)
        queries += [{"iteration": record["iteration"], "order": len(queries) + k, **item}
                    for k, item in enumerate(added)]  # fmt: skip
    for k, item in enumerate(pool):
        write_image(dataset / item["path"], seed=100 + k)
    write_csv(run_folder / "al_queries.csv", queries)
    return run_folder
