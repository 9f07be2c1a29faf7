"""Tests for the CLI datagen/build_manifest.py: `main([...])` in-process, `--help` as a process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from datagen.build_manifest import main
from datagen.manifest import FAKE, MANIFEST_NAME, REAL, ManifestRow, read_manifest

REPO_ROOT = Path(__file__).resolve().parents[2]


def make_image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
    Image.new("RGB", (4, 4), (90, 90, 90)).save(path, format=fmt)
    return path


def leftovers(folder: Path) -> list[str]:
    """A manifest or temp files that a failed run must not leave behind."""
    return sorted(
        p.name for p in folder.iterdir() if p.name.startswith((MANIFEST_NAME, ".manifest"))
    )


def error_lines(stderr: str) -> list[str]:
    """The error report: one ``error: ...`` line, then only indented detail lines."""
    lines = stderr.rstrip("\n").splitlines()
    assert lines, "expected an error message on stderr"
    assert lines[0].startswith("error: ")
    assert all(line.startswith("  ") for line in lines[1:]), stderr
    return lines


@pytest.fixture
def wang_root(tmp_path: Path) -> Path:
    root = tmp_path / "cnn_test"
    for name in (
        "progan/airplane/0_real/a.png",
        "progan/airplane/1_fake/b.png",
        "stylegan3-t-ffhqu-1024x1024/0_real/c.v2.PNG",
        "stylegan3-t-ffhqu-1024x1024/1_fake/d.jpg",
    ):
        make_image(root / name)
    (root / "progan" / "README.txt").write_text("not an image")
    return root


@pytest.fixture
def metadata_root(tmp_path: Path) -> Path:
    root = tmp_path / "sentry-dataset"
    for name in (
        "ImageData/train/cc3m/r.jpg",
        "ImageData/train/sd-v15/f.png",
        "ImageData/val/cc3m/r2.jpg",
        "ImageData/val/cogview2-22K/f2.png",
    ):
        make_image(root / name)
    meta = root / "MetaData"
    (meta / "train").mkdir(parents=True)
    (meta / "val").mkdir()
    # The original wrote 0 = fake, 1 = real.
    (meta / "train" / "cc3m.csv").write_text("./sentry-dataset/ImageData/train/cc3m/r.jpg 1\n")
    (meta / "train" / "sd-v15.csv").write_text("./sentry-dataset/ImageData/train/sd-v15/f.png 0\n")
    (meta / "val" / "cc3m.csv").write_text("./sentry-dataset/ImageData/val/cc3m/r2.jpg 1\n")
    (meta / "val" / "cogview2-22K.csv").write_text(
        "./sentry-dataset/ImageData/val/cogview2-22K/f2.png 0\n"
    )
    return root


# --- building ----------------------------------------------------------------------------------


def test_wang2020_end_to_end(wang_root, capsys):
    assert main(["--layout", "wang2020", "--root", str(wang_root)]) == 0
    out = capsys.readouterr().out
    manifest = wang_root / MANIFEST_NAME
    assert f"wrote {manifest} (4 rows)" in out
    assert "progan" in out
    rows = read_manifest(wang_root)
    assert rows == [
        ManifestRow("progan/airplane/0_real/a.png", REAL, "progan-real", "val", "real"),
        ManifestRow("progan/airplane/1_fake/b.png", FAKE, "progan", "val", "gan"),
        ManifestRow(
            "stylegan3-t-ffhqu-1024x1024/0_real/c.v2.PNG",
            REAL,
            "stylegan3-t-ffhqu-1024x1024-real",
            "val",
            "real",
        ),
        ManifestRow(
            "stylegan3-t-ffhqu-1024x1024/1_fake/d.jpg",
            FAKE,
            "stylegan3-t-ffhqu-1024x1024",
            "val",
            "gan",
        ),
    ]
    assert manifest.read_text().splitlines()[0] == "path,label,source,split,family"
    assert leftovers(wang_root) == [MANIFEST_NAME]


@pytest.mark.parametrize("split", ["train", "val"])
def test_wang2020_split_flag(wang_root, split):
    assert main(["--layout", "wang2020", "--root", str(wang_root), "--split", split]) == 0
    assert {r.split for r in read_manifest(wang_root)} == {split}


def test_metadata_end_to_end_inverts_the_original_labels(metadata_root, capsys):
    assert main(["--layout", "metadata", "--root", str(metadata_root)]) == 0
    assert "(4 rows)" in capsys.readouterr().out
    rows = {r.path: r for r in read_manifest(metadata_root)}
    assert rows == {
        "ImageData/train/cc3m/r.jpg": ManifestRow(
            "ImageData/train/cc3m/r.jpg", REAL, "cc3m", "train", "real"
        ),
        "ImageData/train/sd-v15/f.png": ManifestRow(
            "ImageData/train/sd-v15/f.png", FAKE, "sd-v15", "train", "diffusion"
        ),
        "ImageData/val/cc3m/r2.jpg": ManifestRow(
            "ImageData/val/cc3m/r2.jpg", REAL, "cc3m", "val", "real"
        ),
        "ImageData/val/cogview2-22K/f2.png": ManifestRow(
            "ImageData/val/cogview2-22K/f2.png", FAKE, "cogview2-22K", "val", "autoregressive"
        ),
    }
    text = (metadata_root / MANIFEST_NAME).read_text()
    assert "ImageData/train/sd-v15/f.png,1,sd-v15,train,diffusion" in text.splitlines()


@pytest.mark.parametrize("layout", ["wang2020", "metadata"])
def test_rebuilding_gives_identical_bytes(wang_root, metadata_root, layout):
    root = wang_root if layout == "wang2020" else metadata_root
    args = ["--layout", layout, "--root", str(root)]
    assert main(args) == 0
    first = (root / MANIFEST_NAME).read_bytes()
    assert main(args) == 0
    assert (root / MANIFEST_NAME).read_bytes() == first
    assert leftovers(root) == [MANIFEST_NAME]


def test_out_file_elsewhere(wang_root, tmp_path):
    out = tmp_path / "elsewhere" / "index.csv"
    out.parent.mkdir()
    assert main(["--layout", "wang2020", "--root", str(wang_root), "--out", str(out)]) == 0
    assert out.is_file()
    assert not (wang_root / MANIFEST_NAME).exists()
    assert len(read_manifest(out, check_files=False)) == 4


def test_out_folder_means_manifest_inside(wang_root):
    assert main(["--layout", "wang2020", "--root", str(wang_root), "--out", str(wang_root)]) == 0
    assert len(read_manifest(wang_root)) == 4


def test_out_in_a_missing_folder_is_a_user_error(wang_root, tmp_path, capsys):
    out = tmp_path / "no" / "such" / "m.csv"
    assert main(["--layout", "wang2020", "--root", str(wang_root), "--out", str(out)]) == 2
    lines = error_lines(capsys.readouterr().err)
    assert "--out" in lines[0]
    assert str(out) in lines[0]
    assert not (tmp_path / "no").exists()


# --- --check -------------------------------------------------------------------------------------


def test_check_a_valid_manifest(wang_root, capsys):
    assert main(["--layout", "wang2020", "--root", str(wang_root)]) == 0
    capsys.readouterr()
    before = (wang_root / MANIFEST_NAME).read_bytes()
    assert main(["--check", "--root", str(wang_root)]) == 0
    out = capsys.readouterr().out
    assert f"{wang_root / MANIFEST_NAME}: 4 rows, valid" in out
    assert "progan-real" in out and "real       1  fake       0" in out
    assert (wang_root / MANIFEST_NAME).read_bytes() == before


def test_check_an_invalid_manifest(wang_root, capsys):
    manifest = wang_root / MANIFEST_NAME
    manifest.write_text(
        "path,label,source,split\n"
        "progan/airplane/0_real/a.png,0,progan,val\n"
        "progan/airplane/1_fake/b.png,3,progan,val\n"
    )
    assert main(["--check", "--root", str(wang_root)]) == 2
    captured = capsys.readouterr()
    lines = error_lines(captured.err)
    assert str(manifest) in lines[0]
    assert any("line 3: unknown label '3'" in line for line in lines[1:])
    assert "valid" not in captured.out


def test_check_without_a_manifest(wang_root, capsys):
    assert main(["--check", "--root", str(wang_root)]) == 2
    lines = error_lines(capsys.readouterr().err)
    assert str(wang_root / MANIFEST_NAME) in lines[0]
    assert "manifest not found" in lines[0]


def test_check_with_a_missing_image(wang_root, capsys):
    (wang_root / MANIFEST_NAME).write_text("path,label,source,split\ngone.png,1,progan,val\n")
    assert main(["--check", "--root", str(wang_root)]) == 2
    assert "line 2: missing image 'gone.png'" in capsys.readouterr().err


# --- bad input: exit 2, one clear message, nothing written -------------------------------------


def test_missing_root(tmp_path, capsys):
    missing = tmp_path / "nope"
    assert main(["--layout", "wang2020", "--root", str(missing)]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert line == f"error: --root {missing}: folder not found"
    assert not missing.exists()


def test_root_is_a_file(tmp_path, capsys):
    file = make_image(tmp_path / "a.png")
    assert main(["--check", "--root", str(file)]) == 2
    assert "--root" in capsys.readouterr().err


def test_layout_required_without_check(wang_root, capsys):
    assert main(["--root", str(wang_root)]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert "--layout" in line
    assert leftovers(wang_root) == []


def test_folder_without_images(tmp_path, capsys):
    (tmp_path / "gen" / "0_real").mkdir(parents=True)
    (tmp_path / "gen" / "0_real" / "notes.txt").write_text("x")
    assert main(["--layout", "wang2020", "--root", str(tmp_path)]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert str(tmp_path) in line
    assert "no images found" in line
    assert leftovers(tmp_path) == []


def test_metadata_without_metadata_folder(wang_root, capsys):
    assert main(["--layout", "metadata", "--root", str(wang_root)]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert str(wang_root / "MetaData") in line
    assert leftovers(wang_root) == []


def test_metadata_bad_label_names_the_csv_and_line(metadata_root, capsys):
    csv_path = metadata_root / "MetaData" / "val" / "cc3m.csv"
    csv_path.write_text("ImageData/val/cc3m/r2.jpg 1\nImageData/val/cc3m/r2.jpg real\n")
    assert main(["--layout", "metadata", "--root", str(metadata_root)]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert f"{csv_path}: line 2:" in line
    assert leftovers(metadata_root) == []


def test_metadata_missing_image_writes_nothing(metadata_root, capsys):
    (metadata_root / "ImageData" / "train" / "sd-v15" / "f.png").unlink()
    assert main(["--layout", "metadata", "--root", str(metadata_root)]) == 2
    lines = error_lines(capsys.readouterr().err)
    assert str(metadata_root / MANIFEST_NAME) in lines[0]
    assert any("missing image 'ImageData/train/sd-v15/f.png'" in line for line in lines[1:])
    assert leftovers(metadata_root) == []


def test_metadata_missing_image_is_caught_with_out_elsewhere(metadata_root, tmp_path, capsys):
    (metadata_root / "ImageData" / "val" / "cc3m" / "r2.jpg").unlink()
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    args = ["--layout", "metadata", "--root", str(metadata_root), "--out", str(out_dir)]
    assert main(args) == 2
    assert "missing image 'ImageData/val/cc3m/r2.jpg'" in capsys.readouterr().err
    assert leftovers(out_dir) == []


def test_metadata_duplicate_paths_write_nothing(metadata_root, capsys):
    (metadata_root / "MetaData" / "val" / "again.csv").write_text("ImageData/val/cc3m/r2.jpg 0\n")
    assert main(["--layout", "metadata", "--root", str(metadata_root)]) == 2
    assert "duplicate path 'ImageData/val/cc3m/r2.jpg'" in capsys.readouterr().err
    assert leftovers(metadata_root) == []


def test_failed_build_keeps_an_existing_manifest(metadata_root, capsys):
    assert main(["--layout", "metadata", "--root", str(metadata_root)]) == 0
    before = (metadata_root / MANIFEST_NAME).read_bytes()
    (metadata_root / "MetaData" / "val" / "cc3m.csv").write_text("ImageData/val/cc3m/r2.jpg 5\n")
    assert main(["--layout", "metadata", "--root", str(metadata_root)]) == 2
    assert (metadata_root / MANIFEST_NAME).read_bytes() == before
    assert leftovers(metadata_root) == [MANIFEST_NAME]


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--layout", "cnnspot", "--root", "."], "--layout"),
        (["--layout", "wang2020", "--root", ".", "--split", "test"], "--split"),
        (["--layout", "wang2020"], "--root"),
        (["--root"], "--root"),
        (["--root", ".", "--bogus"], "--bogus"),
    ],
)
def test_bad_flags_are_argparse_errors(args, flag, capsys):
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: python -m datagen.build_manifest" in err
    assert flag in err.splitlines()[-1]


def test_help_as_a_process():
    result = subprocess.run(
        [sys.executable, "-m", "datagen.build_manifest", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m datagen.build_manifest")
    for flag in ("--root", "--layout", "--split", "--out", "--check", "wang2020", "metadata"):
        assert flag in result.stdout
    assert result.stderr == ""
