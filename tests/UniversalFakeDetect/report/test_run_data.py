"""The data a report is built from, against computations made here from the files."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from rfd_common.errors import UserError
from tests.UniversalFakeDetect.report.conftest import al_history
from UniversalFakeDetect.report.run_data import (
    confident_mistakes,
    load_run,
    query_samples,
    query_steps,
    run_kind,
)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def expected_mistakes(path: Path, threshold: float, keep: int) -> dict[str, list[str]]:
    """Per source, the paths of its most confident mistakes, worked out here the long way:
    reals called fake (p >= threshold) by falling p, fakes called real by rising p; ties by
    path."""
    rows = read_csv(path)
    found: dict[str, list[str]] = {}
    for source in sorted({r["source"] for r in rows}):
        wrong = []
        for r in rows:
            p, label = float(r["prob_fake"]), int(r["label"])
            if r["source"] == source and ((label == 0 and p >= threshold) or
                                          (label == 1 and p < threshold)):  # fmt: skip
                wrong.append((-p if label == 0 else p, r["path"]))
        found[source] = [path for _, path in sorted(wrong)[:keep]]
    return found


@pytest.mark.parametrize(("threshold", "keep"), [(0.5, 8), (0.5, 2), (0.3, 8), (0.8, 1)])
def test_most_confident_mistakes_per_source(run_folder: Path, threshold: float, keep: int) -> None:
    data = load_run(run_folder)
    assert data.predictions is not None
    found = confident_mistakes(data.predictions, threshold, keep)
    expected = expected_mistakes(run_folder / "predictions.csv", threshold, keep)
    assert {m.source: [p.path for p in m.shown] for m in found} == expected
    rows = read_csv(run_folder / "predictions.csv")
    for m in found:
        assert m.images == sum(r["source"] == m.source for r in rows)
        assert m.total >= len(m.shown)


def test_ties_and_the_threshold_itself(run_folder: Path) -> None:
    """Two reals at 0.9 come in path order; a real at exactly 0.5 is called fake (the
    accuracies' rule: fake when p >= threshold), so it is a false positive."""
    data = load_run(run_folder)
    assert data.predictions is not None
    camera = next(m for m in confident_mistakes(data.predictions, 0.5) if m.source == "camera")
    paths = [p.path for p in camera.shown]
    assert paths[:2] == ["ImageData/val/camera/000.jpg", "ImageData/val/camera/001.jpg"]
    assert paths[-1] == "ImageData/val/camera/002.jpg"
    assert camera.shown[-1].prob_fake == 0.5


def test_query_steps_are_the_differences_of_the_history() -> None:
    history = al_history()
    steps = query_steps(history)
    assert [(s.iteration, s.added, s.real, s.fake) for s in steps] == [
        (0, 8, 4, 4),
        (1, 6, 1, 5),
        (2, 6, 4, 2),
    ]
    assert [s.labelled for s in steps] == [h["labelled"] for h in history]


def test_query_steps_match_the_saved_queries(al_folder: Path) -> None:
    """The class balance from the history equals the labels of al_queries.csv's rows."""
    data = load_run(al_folder)
    assert data.al_results is not None and data.queries is not None
    queries = read_csv(al_folder / "al_queries.csv")
    for step in query_steps(data.al_results["history"]):
        labels = [int(q["label"]) for q in queries if int(q["iteration"]) == step.iteration]
        assert (step.real, step.fake) == (labels.count(0), labels.count(1))


def test_query_samples_spread_over_each_query(al_folder: Path) -> None:
    data = load_run(al_folder)
    assert data.queries is not None
    for per_iteration in (1, 3, 8, 100):
        samples = query_samples(data.queries, per_iteration)
        assert sorted(samples) == [0, 1, 2]
        for iteration, shown in samples.items():
            added = [q for q in data.queries if q.iteration == iteration]
            assert len(shown) == min(per_iteration, len(added))
            assert shown[0] == added[0]
            positions = [added.index(q) for q in shown]
            assert positions == sorted(set(positions))  # distinct, in labelling order


def test_run_kinds(run_folder: Path, al_folder: Path) -> None:
    assert load_run(al_folder).kind == "active_learning"
    metrics = json.loads((run_folder / "metrics.json").read_text())
    assert run_kind(metrics["info"], False) == "test"
    assert run_kind({"best_epoch": 3, "history": []}, False) == "training"
    assert run_kind({"run_kind": "test", "history": []}, True) == "test"


def test_not_a_run_folder(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=re.escape(f"{tmp_path}: not a run folder")):
        load_run(tmp_path)
    with pytest.raises(UserError, match="no such folder"):
        load_run(tmp_path / "absent")
    (tmp_path / "al_comparison.csv").write_text("strategy\n")
    (tmp_path / "bald").mkdir()
    (tmp_path / "bald" / "al_results.json").write_text("{}")
    with pytest.raises(UserError, match="give one of its run folders: bald"):
        load_run(tmp_path)


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", "\xff"])
def test_a_damaged_metrics_file_is_named(run_folder: Path, text: str) -> None:
    (run_folder / "metrics.json").write_bytes(text.encode("latin-1"))
    with pytest.raises(UserError, match=r"metrics\.json: cannot be read as JSON"):
        load_run(run_folder)


def test_missing_and_damaged_optional_files_become_notes(run_folder: Path) -> None:
    (run_folder / "predictions.csv").write_text("path,source\nx,y\n")
    data = load_run(run_folder)
    assert data.predictions is None
    assert "could not be read (KeyError" in data.notes["predictions.csv"]
    (run_folder / "predictions.csv").unlink()
    data = load_run(run_folder)
    assert data.predictions is None and data.notes["predictions.csv"] == "not written by this run"
