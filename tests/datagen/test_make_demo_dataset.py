"""datagen/make_demo_dataset.py: the CLI writes a dataset and reports it; bad input exits 2 and
writes nothing; --help works as a module."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from datagen import make_demo_dataset
from datagen.manifest import read_manifest
from tests.datagen.digest import tree_digest


def test_cli_writes_dataset_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "cli"
    argv = ["--out", str(out), "--seed", "4", "--train_images", "40", "--val_images", "56"]
    assert make_demo_dataset.main([*argv, "--quiet"]) == 0
    assert len(read_manifest(out)) == 96
    assert str(out) in capsys.readouterr().out


@pytest.mark.parametrize(
    ("make_out", "flags", "needle"),
    [
        (lambda t: t / "missing" / "demo", [], "does not exist"),
        (lambda t: t / "file.txt" / "demo", [], "is not a folder"),
        (lambda t: t / "full", [], "not empty"),
        (lambda t: t / "ok", ["--size", "30"], "--size 30"),
        (lambda t: t / "ok", ["--train_images", "7"], "--train_images 7"),
    ],
)
def test_cli_bad_input_exits_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture, make_out, flags: list[str], needle: str
) -> None:
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    before = tree_digest(tmp_path)
    assert make_demo_dataset.main(["--out", str(make_out(tmp_path)), "--quiet", *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and needle in err
    assert tree_digest(tmp_path) == before
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


def test_help_runs_as_a_module() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "datagen.make_demo_dataset", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--seed" in result.stdout and "--size" in result.stdout
