"""The rendered page: its tables equal the saved files, its galleries show the right images,
and missing inputs leave notes instead of errors."""

from __future__ import annotations

import base64
import io
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from tests.UniversalFakeDetect.report.page_parts import page_parts, percent
from tests.UniversalFakeDetect.report.test_run_data import expected_mistakes, read_csv
from UniversalFakeDetect.report import (
    REPORT_HTML,
    render,
    render_report,
    write_html_report,
    write_run_report,
)


def expected_source_rows(metrics: dict) -> list[list[str]]:
    """The per-source table as the page must show it, from metrics.json."""
    rows = []
    for s in metrics["sources"]:
        seen = {True: "yes", False: "no", None: "–"}[s["seen_in_training"]]
        rows.append(
            [s["source"], s["family"], "fake" if s["label"] else "real", str(s["images"]),
             percent(s["accuracy"]), percent(s["ap"]), percent(s["roc_auc"]),
             percent(s["best_threshold_accuracy"]), seen]
        )  # fmt: skip
    m = metrics["summary"]
    rows.append(
        ["mean", "", "", str(m["images"]), percent(m["mean_source_accuracy"]),
         percent(m["mean_ap"]), percent(m["mean_roc_auc"]), percent(m["best_threshold_accuracy"]),
         ""]
    )  # fmt: skip
    return rows


def jpeg_size(uri: str) -> tuple[int, int]:
    assert uri.startswith("data:image/jpeg;base64,")
    with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as image:
        assert image.format == "JPEG"
        return image.size


def test_per_source_table_equals_metrics_json(run_folder: Path) -> None:
    parts = page_parts(render_report(run_folder))
    metrics = json.loads((run_folder / "metrics.json").read_text())
    assert parts.tables["source-table"][1:] == expected_source_rows(metrics)


def test_galleries_show_the_most_confident_mistakes(run_folder: Path) -> None:
    parts = page_parts(render_report(run_folder, per_source=2))
    thumbnails = [i for i in parts.images if i["src"].startswith("data:image/jpeg;")]
    expected = expected_mistakes(run_folder / "predictions.csv", 0.5, 2)
    # reals' false positives first, then fakes' false negatives, each source by name
    metrics = json.loads((run_folder / "metrics.json").read_text())
    label = {s["source"]: s["label"] for s in metrics["sources"]}
    order = sorted(expected, key=lambda source: (label[source], source))
    assert [i["alt"] for i in thumbnails] == [p for source in order for p in expected[source]]
    assert all(jpeg_size(i["src"]) == (40, 40) for i in thumbnails)  # never enlarged
    plots = [i for i in parts.images if i["src"].startswith("data:image/png;")]
    assert [i["alt"] for i in plots] == ["ROC per generator", "Accuracy per source"]


def test_thumbnails_are_small(run_folder: Path, dataset: Path) -> None:
    big = dataset / "ImageData/val/camera/000.jpg"
    Image.new("RGB", (400, 300), (200, 30, 30)).save(big)
    parts = page_parts(render_report(run_folder))
    uri = next(i["src"] for i in parts.images if i["alt"] == "ImageData/val/camera/000.jpg")
    assert jpeg_size(uri) == (128, 96)


def test_active_learning_sections(al_folder: Path) -> None:
    parts = page_parts(render_report(al_folder, per_iteration=3))
    history = json.loads((al_folder / "al_results.json").read_text())["history"]
    rows = parts.tables["query-table"][1:]
    assert [r[0] for r in rows] == ["0 (initial set)", "1", "2"]
    assert [r[1:4] for r in rows] == [["8", "4", "4"], ["6", "1", "5"], ["6", "4", "2"]]
    assert [r[5] for r in rows] == [str(h["labelled"]) for h in history]
    assert [r[6] for r in rows] == [percent(h["val_ap"]) for h in history]
    queried = {q["path"] for q in read_csv(al_folder / "al_queries.csv")}
    shown = [i["alt"] for i in parts.images if i["alt"] in queried]
    assert len(shown) == 3 * 3
    assert any(i["alt"] == "learning curve" for i in parts.images)


def test_images_not_on_disk_leave_a_note(run_folder: Path, dataset: Path) -> None:
    shutil.rmtree(dataset)
    parts = page_parts(render_report(run_folder))
    assert not [i for i in parts.images if i["src"].startswith("data:image/jpeg")]
    assert any(f"could not be read under {dataset}" in n for n in parts.notes)
    assert parts.tables["source-table"]  # the rest of the page is there


def test_some_images_missing(run_folder: Path, dataset: Path) -> None:
    (dataset / "ImageData/val/camera/000.jpg").unlink()
    (dataset / "ImageData/val/gan-a/010.jpg").write_bytes(b"not an image")
    parts = page_parts(render_report(run_folder))
    assert any(n.startswith("2 of ") and "could not be read" in n for n in parts.notes)
    assert len([i for i in parts.images if i["src"].startswith("data:image/jpeg")]) >= 1


def test_no_recorded_dataset_root(run_folder: Path, dataset: Path) -> None:
    metrics = json.loads((run_folder / "metrics.json").read_text())
    del metrics["info"]["data_root"]
    (run_folder / "metrics.json").write_text(json.dumps(metrics))
    parts = page_parts(render_report(run_folder))
    assert any("dataset root is not recorded" in n for n in parts.notes)
    given = page_parts(render_report(run_folder, dataset))  # --data_root
    assert [i for i in given.images if i["src"].startswith("data:image/jpeg")]


def test_missing_plots_and_predictions_leave_notes(run_folder: Path) -> None:
    (run_folder / "roc.png").unlink()
    (run_folder / "accuracy_by_source.png").write_text("not a png")
    (run_folder / "predictions.csv").unlink()
    parts = page_parts(render_report(run_folder))
    assert "roc.png is missing or is not a PNG image" in parts.notes
    assert "accuracy_by_source.png is missing or is not a PNG image" in parts.notes
    assert "predictions.csv is missing or unreadable: no mistakes to show." in parts.notes
    assert not parts.images


def test_active_learning_run_stopped_before_its_test(al_folder: Path) -> None:
    for name in ("metrics.json", "predictions.csv", "al_queries.csv"):
        (al_folder / name).unlink()
    parts = page_parts(render_report(al_folder))
    assert len(parts.tables["query-table"]) == 4
    assert "source-table" not in parts.tables
    assert any(n.startswith("No test results") for n in parts.notes)
    assert any(n.startswith("al_queries.csv is missing") for n in parts.notes)


def test_text_from_the_files_is_escaped(run_folder: Path) -> None:
    metrics = json.loads((run_folder / "metrics.json").read_text())
    metrics["sources"][0]["source"] = "<script>alert(1)</script>"
    metrics["info"]["name"] = 'a "quoted" & <b>bold</b> name'
    (run_folder / "metrics.json").write_text(json.dumps(metrics))
    html = render_report(run_folder)
    assert "<script>" not in html and "<b>bold" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    parts = page_parts(html)
    assert parts.tables["source-table"][1][0] == "<script>alert(1)</script>"


def test_written_atomically_and_rebuilt_identically(run_folder: Path, tmp_path: Path) -> None:
    path = write_html_report(run_folder)
    assert path == run_folder / REPORT_HTML
    first = path.read_bytes()
    assert write_html_report(run_folder).read_bytes() == first
    assert not [p for p in run_folder.iterdir() if p.name.startswith(".")]  # no temporary left
    elsewhere = write_html_report(run_folder, out=tmp_path / "copy" / "page.html")
    assert elsewhere.read_bytes() == first


def test_the_end_of_run_hook_reports_and_never_raises(
    run_folder: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    assert write_run_report(run_folder) == run_folder / REPORT_HTML
    assert f"report: {run_folder / REPORT_HTML} (" in capsys.readouterr().out

    def broken(*_: object, **__: object) -> str:
        raise ValueError("template trouble")

    monkeypatch.setattr(render, "render_report", broken)
    assert write_run_report(run_folder) is None
    err = capsys.readouterr().err
    assert "report.html not written (ValueError: template trouble)" in err
    assert f"python -m UniversalFakeDetect.report {run_folder}" in err
