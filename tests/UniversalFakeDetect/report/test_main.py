"""``python -m UniversalFakeDetect.report RUN_DIR``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.help_imports import heavy_modules_loaded_by_help
from UniversalFakeDetect.report.__main__ import main


def test_rebuilds_the_report(run_folder: Path, capsys) -> None:
    assert main([str(run_folder)]) == 0
    assert (run_folder / "report.html").is_file()
    assert str(run_folder / "report.html") in capsys.readouterr().out


def test_out_and_limits(run_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "pages" / "r.html"
    assert main([str(run_folder), "--out", str(out), "--per_source", "0"]) == 0
    assert out.is_file() and "data:image/jpeg" not in out.read_text()
    assert not (run_folder / "report.html").exists()


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["{tmp}"], "{tmp}: not a run folder (neither metrics.json nor al_results.json is there)"),
        (["{tmp}/absent"], "{tmp}/absent: no such folder"),
        (["{run}", "--per_source", "-1"], "--per_source -1: must be 0 or more"),
        (["{run}", "--out", "{tmp}"], "{tmp}: is a folder; --out names the page file"),
    ],
)
def test_bad_input_exits_2_with_one_message(
    run_folder: Path, tmp_path: Path, capsys, argv: list[str], needle: str
) -> None:
    def fill(text: str) -> str:
        return text.format(tmp=tmp_path, run=run_folder)

    assert main([fill(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and fill(needle) in err and err.count("\n") == 1


def test_help_runs_as_a_module_without_torch() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "UniversalFakeDetect.report", "--help"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0 and "RUN_DIR" in done.stdout
    assert "torch" not in heavy_modules_loaded_by_help("UniversalFakeDetect.report")
