"""datagen/make_sentry_subset.py and datagen/add_real_data.py run by path, from the repository
root and from any other folder (the installed package is imported; the scripts do not touch
sys.path), and as modules: --help shows their flags."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SHOWN = {
    "make_sentry_subset": (
        "--local_dataset_path",
        "--repo_id",
        "--revision",
        "--dry_run",
        "--keep_archives",
        "--max_member_bytes",
        "IFv1-dpmsolver++-50-1M",  # the catalog is shown
        "SDv15-CC30K -> SDv15R-dpmsolver-25-15K",  # Hub folder -> leaf
    ),
    "add_real_data": (
        "--sources",
        "--cc3m_train_tsv",
        "--afhq_url",
        "--max_images_per_source",
        "KAGGLE_USERNAME",
    ),
}


def help_text(command: list[str], cwd: Path) -> str:
    result = subprocess.run(
        [sys.executable, *command, "--help"], cwd=cwd, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("script", sorted(SHOWN))
@pytest.mark.parametrize("where", ["repository root", "another folder"])
def test_help_by_path(script: str, where: str, tmp_path: Path) -> None:
    if where == "repository root":
        cwd, path = REPO_ROOT, f"datagen/{script}.py"
    else:
        cwd, path = tmp_path, str(REPO_ROOT / "datagen" / f"{script}.py")
    out = help_text([path], cwd)
    assert out.startswith(f"usage: python datagen/{script}.py")
    for shown in SHOWN[script]:
        assert shown in out


@pytest.mark.parametrize("script", sorted(SHOWN))
def test_help_as_a_module(script: str, tmp_path: Path) -> None:
    out = help_text(["-m", f"datagen.{script}"], tmp_path)
    for shown in SHOWN[script]:
        assert shown in out
