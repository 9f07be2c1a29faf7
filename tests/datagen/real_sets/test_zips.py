"""datagen.real_sets.zips: zip members above the size cap (a flag) are refused unread and counted
in the summary."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from datagen import add_real_data
from datagen.convert import ConversionPool
from datagen.limits import MAX_MEMBER_BYTES
from datagen.manifest import REAL, read_manifest
from datagen.preprocess import Preprocessing
from datagen.real_sets.zips import convert_zip
from datagen.source_writer import OVERSIZED, SourceReport, SourceWriter
from tests.datagen.fake_hub import noise_png


def write_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def opened_members(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the name of every zip member opened for reading."""
    opened: list[str] = []
    original = zipfile.ZipFile.open

    def recording(self, name, *args, **kwargs):  # type: ignore[no-untyped-def]
        opened.append(name if isinstance(name, str) else name.filename)
        return original(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", recording)
    return opened


def test_the_cap_is_64_mib_and_a_larger_member_is_never_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert MAX_MEMBER_BYTES == 64 * 1024 * 1024
    big = b"\0" * (MAX_MEMBER_BYTES + 1)  # deflates to about 64 KB
    path = write_zip(tmp_path / "a.zip", {"a/0.png": noise_png(0), "a/1.png": big})
    del big
    opened = opened_members(monkeypatch)
    report = SourceReport("afhq-v2", "train", REAL)
    with ConversionPool(Preprocessing(), workers=1) as pool:
        writer = SourceWriter(tmp_path / "ds", pool, report, {"afhq-v2": "afhq-v2"}, "real")
        convert_zip(path, writer, "afhq-v2")
        rows = writer.finish()
    assert [r.path for r in rows] == ["afhq-v2/0.jpg"]
    assert report.skipped[OVERSIZED] == 1
    assert report.examples[OVERSIZED] == [f"a/1.png ({MAX_MEMBER_BYTES + 1} bytes)"]
    assert opened == ["a/0.png"]


def test_the_cap_is_a_flag_and_the_summary_counts_refusals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    small, large = noise_png(1, (16, 16)), noise_png(2, (96, 96))
    assert len(small) < 4000 < len(large)
    path = write_zip(tmp_path / "afhq.zip", {"train/cat/0.png": small, "train/cat/1.png": large})
    opened = opened_members(monkeypatch)
    root = tmp_path / "ds"
    argv = ["--local_dataset_path", str(root), "--workers", "1", "--quiet"]
    argv += ["--sources", "afhq-v2", "--afhq_url", str(path), "--max_member_bytes", "4000"]
    assert add_real_data.main(argv) == 0
    assert [r.path for r in read_manifest(root)] == ["ImageData/train/afhq-v2/cat/0.jpg"]
    assert "train/cat/1.png" not in opened
    out = capsys.readouterr().out
    assert f"{OVERSIZED}: 1 (e.g. train/cat/1.png ({len(large)} bytes))" in out
