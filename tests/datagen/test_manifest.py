"""Tests for datagen/manifest.py: writing, reading and validating ``manifest.csv``."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from PIL import Image

from datagen.manifest import (
    ALL_COLUMNS,
    FAKE,
    MANIFEST_NAME,
    MAX_REPORTED_ERRORS,
    REAL,
    REQUIRED_COLUMNS,
    ManifestError,
    ManifestRow,
    format_manifest,
    read_manifest,
    select,
    summarize,
    validate_rows,
    write_manifest,
)
from rfd_common.errors import UserError

HEADER = ",".join(REQUIRED_COLUMNS)
HEADER_WITH_FAMILY = ",".join(ALL_COLUMNS)


def make_image(path: Path, color: tuple[int, int, int] = (200, 30, 30)) -> Path:
    """A tiny but real image file (format from the suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), color).save(path)
    return path


def stray_temp_files(folder: Path) -> list[Path]:
    return sorted(folder.glob(f".{MANIFEST_NAME}.*"))


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """A dataset root holding five tiny images (no manifest yet)."""
    for name in ("real/a.jpg", "real/b.png", "fake/c.png", "fake/d.jpg", "fake/e.png"):
        make_image(tmp_path / name)
    return tmp_path


@pytest.fixture
def rows() -> list[ManifestRow]:
    """Rows for the ``dataset`` fixture, deliberately not sorted by path."""
    return [
        ManifestRow("fake/d.jpg", FAKE, "sd-v15", "val"),
        ManifestRow("real/b.png", REAL, "cc3m", "train"),
        ManifestRow("fake/c.png", FAKE, "sd-v15", "train"),
        ManifestRow("real/a.jpg", REAL, "cc3m", "val"),
        ManifestRow("fake/e.png", FAKE, "stylegan3", "train"),
    ]


@pytest.fixture
def family_rows(rows: list[ManifestRow]) -> list[ManifestRow]:
    families = {"cc3m": "real", "sd-v15": "diffusion", "stylegan3": "gan"}
    return [ManifestRow(r.path, r.label, r.source, r.split, families[r.source]) for r in rows]


def write_csv(folder: Path, body: str, header: str = HEADER) -> Path:
    path = folder / MANIFEST_NAME
    path.write_text(f"{header}\n{body}", encoding="utf-8")
    return path


# --- round trip and determinism -------------------------------------------------------------


def test_round_trip_returns_rows_sorted_by_path(dataset, rows):
    written = write_manifest(rows, dataset / MANIFEST_NAME)
    assert written == dataset / MANIFEST_NAME
    assert read_manifest(written) == sorted(rows, key=lambda r: r.path)


def test_round_trip_with_family(dataset, family_rows):
    write_manifest(family_rows, dataset)
    back = read_manifest(dataset)
    assert back == sorted(family_rows, key=lambda r: r.path)
    assert {r.family for r in back} == {"real", "diffusion", "gan"}


def test_file_lines_are_sorted_by_path(dataset, rows):
    path = write_manifest(rows, dataset)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == HEADER
    paths = [line.split(",")[0] for line in lines[1:]]
    assert paths == sorted(r.path for r in rows)
    assert lines[1] == "fake/c.png,1,sd-v15,train"


def test_write_to_a_folder_writes_manifest_csv_inside(dataset, rows):
    assert write_manifest(rows, dataset) == dataset / MANIFEST_NAME
    assert (dataset / MANIFEST_NAME).is_file()


@pytest.mark.parametrize("seed", range(5))
def test_bytes_do_not_depend_on_input_order(dataset, tmp_path_factory, family_rows, seed):
    reference = write_manifest(family_rows, dataset).read_bytes()
    shuffled = list(family_rows)
    random.Random(seed).shuffle(shuffled)
    other = tmp_path_factory.mktemp("other") / MANIFEST_NAME
    write_manifest(shuffled, other, check_files=False)
    assert other.read_bytes() == reference


def test_format_is_plain_lf_csv(rows):
    text = format_manifest(rows)
    assert "\r" not in text
    assert text.endswith("\n")
    assert format_manifest(reversed(rows)) == text


def test_family_column_only_when_some_row_has_one(dataset, rows, family_rows):
    without = write_manifest(rows, dataset).read_text(encoding="utf-8")
    assert without.splitlines()[0] == HEADER
    assert all(line.count(",") == 3 for line in without.splitlines())

    with_family = write_manifest(family_rows, dataset).read_text(encoding="utf-8")
    assert with_family.splitlines()[0] == HEADER_WITH_FAMILY
    assert "fake/e.png,1,stylegan3,train,gan" in with_family.splitlines()


def test_mixed_family_rows_write_unknown_for_missing(dataset, rows):
    mixed = [ManifestRow("fake/d.jpg", FAKE, "sd-v15", "val", "diffusion"), *rows[1:]]
    write_manifest(mixed, dataset)
    back = {r.path: r.family for r in read_manifest(dataset)}
    assert back["fake/d.jpg"] == "diffusion"
    assert back["real/b.png"] == "unknown"


def test_reading_header_without_family_gives_none(dataset):
    path = write_csv(dataset, "real/a.jpg,0,cc3m,train\n")
    assert read_manifest(path) == [ManifestRow("real/a.jpg", REAL, "cc3m", "train", None)]


def test_fields_are_stripped_and_commas_in_paths_survive(tmp_path):
    make_image(tmp_path / "odd, name.png")
    rows = [ManifestRow("odd, name.png", FAKE, "gen", "val")]
    write_manifest(rows, tmp_path)
    assert read_manifest(tmp_path) == rows
    write_csv(tmp_path, "odd.png , 1 , gen , val\n")
    make_image(tmp_path / "odd.png")
    assert read_manifest(tmp_path) == [ManifestRow("odd.png", FAKE, "gen", "val")]


def test_byte_order_mark_is_accepted(dataset):
    path = dataset / MANIFEST_NAME
    path.write_bytes(("\ufeff" + HEADER + "\nreal/a.jpg,0,cc3m,train\n").encode("utf-8"))
    assert [r.path for r in read_manifest(path)] == ["real/a.jpg"]


def test_crlf_line_endings_are_accepted(dataset):
    path = dataset / MANIFEST_NAME
    path.write_bytes(f"{HEADER}\r\nreal/a.jpg,0,cc3m,train\r\n".encode())
    assert read_manifest(path) == [ManifestRow("real/a.jpg", REAL, "cc3m", "train")]


def test_write_goes_through_a_temp_file_and_a_rename(dataset, rows, monkeypatch):
    renames = []
    real_replace = os.replace

    def spy(src, dst):
        renames.append((Path(src), Path(dst), Path(src).read_bytes()))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    path = write_manifest(rows, dataset)
    ((src, dst, data),) = renames
    assert dst == path
    assert src.parent == dataset
    assert src.name.startswith(f".{MANIFEST_NAME}.")
    assert data == path.read_bytes() == format_manifest(rows).encode()


def test_interrupted_write_keeps_the_previous_manifest(dataset, rows, monkeypatch):
    path = write_manifest(rows[:2], dataset)
    before = path.read_bytes()

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_manifest(rows, dataset)
    assert path.read_bytes() == before
    assert stray_temp_files(dataset) == []


def test_written_file_leaves_no_temp_files(dataset, rows):
    write_manifest(rows, dataset)
    write_manifest(rows, dataset)
    assert stray_temp_files(dataset) == []


# --- validation errors while reading ----------------------------------------------------------


BAD_ROWS = [
    pytest.param("real/a.jpg,2,cc3m,train\n", 2, "unknown label '2'", id="label-2"),
    pytest.param("real/a.jpg,fake,cc3m,train\n", 2, "unknown label 'fake'", id="label-word"),
    pytest.param("real/a.jpg,-1,cc3m,train\n", 2, "unknown label '-1'", id="label-negative"),
    pytest.param("real/a.jpg,1.0,cc3m,train\n", 2, "unknown label '1.0'", id="label-float"),
    pytest.param("real/a.jpg,\u00b2,cc3m,train\n", 2, "unknown label '\u00b2'", id="label-unicode"),
    pytest.param("real/a.jpg,,cc3m,train\n", 2, "unknown label ''", id="label-empty"),
    pytest.param("real/zzz.jpg,0,cc3m,train\n", 2, "missing image 'real/zzz.jpg'", id="missing"),
    pytest.param("real/a.jpg\n", 2, "wrong number of fields", id="one-field"),
    pytest.param(
        "real/a.jpg,0,cc3m,train\nreal/a.jpg,1,cc3m,val\n",
        3,
        "duplicate path 'real/a.jpg' (first on line 2)",
        id="duplicate",
    ),
    pytest.param(
        "real/a.jpg,0,gen,train\nreal/b.png,1,gen,train\n",
        3,
        "source 'gen' holds both real and fake images (reals from line 2)",
        id="mixed-source",
    ),
    pytest.param("real/a.jpg,0,cc3m,test\n", 2, "unknown split 'test'", id="split"),
    pytest.param("real/a.jpg,0,cc3m,Train\n", 2, "unknown split 'Train'", id="split-case"),
    pytest.param("real/a.jpg,0,,train\n", 2, "empty source", id="source"),
    pytest.param("real/a.jpg,0,cc3m,train,extra\n", 2, "wrong number of fields", id="too-many"),
    pytest.param("real/a.jpg,0,cc3m\n", 2, "wrong number of fields", id="too-few"),
    pytest.param(
        "/etc/passwd,0,cc3m,train\n", 2, "path '/etc/passwd' must be relative", id="absolute"
    ),
    pytest.param("../outside.png,0,cc3m,train\n", 2, "path '../outside.png' must", id="dotdot"),
    pytest.param(
        "real/../../x.png,0,cc3m,train\n", 2, "path 'real/../../x.png' must", id="dotdot-inside"
    ),
    pytest.param("real\\a.jpg,0,cc3m,train\n", 2, "path 'real\\a.jpg' must be", id="backslash"),
    pytest.param(",0,cc3m,train\n", 2, "empty path", id="empty-path"),
    pytest.param(
        "real/a.jpg,0,cc3m,train\n\nreal/b.png,7,cc3m,train\n",
        4,
        "unknown label '7'",
        id="blank-line-keeps-line-numbers",
    ),
]


@pytest.mark.parametrize(("body", "line", "problem"), BAD_ROWS)
def test_invalid_row_names_file_line_and_problem(dataset, body, line, problem):
    path = write_csv(dataset, body)
    with pytest.raises(ManifestError) as info:
        read_manifest(path)
    message = str(info.value)
    assert str(path) in message
    assert f"line {line}: {problem}" in message


FAMILY_BAD_ROWS = [
    pytest.param("real/a.jpg,0,cc3m,train,vae\n", 2, "unknown family 'vae'", id="family"),
    pytest.param("real/a.jpg,0,cc3m,train\n", 2, "wrong number of fields", id="family-missing"),
    pytest.param(
        "real/a.jpg,0,cc3m,train,real\nreal/b.png,0,cc3m,train,GAN\n",
        3,
        "unknown family 'GAN'",
        id="family-case",
    ),
]


@pytest.mark.parametrize(("body", "line", "problem"), FAMILY_BAD_ROWS)
def test_invalid_family_row_names_file_line_and_problem(dataset, body, line, problem):
    path = write_csv(dataset, body, header=HEADER_WITH_FAMILY)
    with pytest.raises(ManifestError) as info:
        read_manifest(path)
    assert str(path) in str(info.value)
    assert f"line {line}: {problem}" in str(info.value)


def test_empty_family_cell_means_no_family(dataset):
    path = write_csv(dataset, "real/a.jpg,0,cc3m,train,\n", header=HEADER_WITH_FAMILY)
    assert read_manifest(path)[0].family is None


def test_all_problems_of_one_row_are_listed(dataset):
    path = write_csv(dataset, "nowhere.png,5,,dev,xx\n", header=HEADER_WITH_FAMILY)
    with pytest.raises(ManifestError) as info:
        read_manifest(path)
    message = str(info.value)
    for problem in ("missing image", "unknown label '5'", "unknown split 'dev'", "empty source"):
        assert f"line 2: {problem}" in message
    assert "unknown family 'xx'" in message


def test_problems_are_listed_in_line_order(dataset):
    body = "real/a.jpg,0,cc3m,train\nreal/b.png,0,cc3m\nfake/c.png,9,x,train\n"
    path = write_csv(dataset, body)
    with pytest.raises(ManifestError) as info:
        read_manifest(path)
    message = str(info.value)
    assert message.index("line 3: wrong number of fields") < message.index("line 4: unknown label")


def test_check_files_false_skips_only_the_existence_check(tmp_path):
    path = write_csv(tmp_path, "not/here.png,1,gen,val\n")
    assert read_manifest(path, check_files=False) == [
        ManifestRow("not/here.png", FAKE, "gen", "val")
    ]
    write_csv(tmp_path, "not/here.png,3,gen,val\n")
    with pytest.raises(ManifestError, match="unknown label '3'"):
        read_manifest(path, check_files=False)


def test_a_folder_as_image_path_is_missing(dataset):
    path = write_csv(dataset, "real,0,cc3m,train\n")
    with pytest.raises(ManifestError, match=r"line 2: missing image 'real'"):
        read_manifest(path)


BAD_HEADERS = [
    pytest.param("path,label,source", "missing column(s) split", id="missing-split"),
    pytest.param("file,label,source,split", "missing column(s) path", id="renamed"),
    pytest.param("path;label;source;split", "missing column(s) path, label", id="semicolons"),
    pytest.param("path,label,source,split,notes", "unknown column(s) notes", id="unknown"),
    pytest.param("path,label,source,split,split", "repeated column(s) split", id="repeated"),
    pytest.param("", "missing column(s) path, label, source, split", id="empty-file"),
]


@pytest.mark.parametrize(("header", "problem"), BAD_HEADERS)
def test_bad_header_names_file_line_1_and_problem(dataset, header, problem):
    path = write_csv(dataset, "real/a.jpg,0,cc3m,train\n" if header else "", header=header)
    with pytest.raises(ManifestError) as info:
        read_manifest(path)
    assert str(info.value).startswith(f"{path}: line 1: ")
    assert problem in str(info.value)


def test_header_with_columns_in_another_order_is_accepted(dataset):
    path = write_csv(dataset, "cc3m,train,real/a.jpg,0\n", header="source,split,path,label")
    assert read_manifest(path) == [ManifestRow("real/a.jpg", REAL, "cc3m", "train")]


def test_missing_manifest_names_file_and_how_to_build_one(tmp_path):
    with pytest.raises(ManifestError) as info:
        read_manifest(tmp_path)
    assert str(tmp_path / MANIFEST_NAME) in str(info.value)
    assert "datagen.build_manifest" in str(info.value)


def test_non_utf8_manifest_is_a_manifest_error(tmp_path):
    path = tmp_path / MANIFEST_NAME
    path.write_bytes(f"{HEADER}\n".encode() + b"caf\xe9.png,0,x,train\n")
    with pytest.raises(ManifestError, match="not a UTF-8"):
        read_manifest(path)


@pytest.mark.parametrize(
    ("bad", "listed", "more"),
    [(1, 1, None), (MAX_REPORTED_ERRORS, MAX_REPORTED_ERRORS, None), (8, 5, 3), (20, 5, 15)],
)
def test_error_list_is_truncated(tmp_path, bad, listed, more):
    body = "".join(f"img{i}.png,9,gen,val\n" for i in range(bad))
    path = write_csv(tmp_path, body)
    with pytest.raises(ManifestError) as info:
        read_manifest(path, check_files=False)
    message = str(info.value)
    assert message.count("unknown label") == listed
    assert "line 2: unknown label" in message
    if more is None:
        assert "more" not in message
    else:
        assert message.rstrip().endswith(f"... and {more} more")
        assert f"line {2 + listed}:" not in message


def test_manifest_error_is_a_user_error():
    assert issubclass(ManifestError, UserError)


# --- validation while writing -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad_row", "problem"),
    [
        (ManifestRow("real/a.jpg", 2, "cc3m", "val"), "unknown label '2'"),
        (ManifestRow("real/zzz.jpg", 0, "cc3m", "val"), "missing image"),
        (ManifestRow("real/a.jpg", 0, "cc3m", "testing"), "unknown split 'testing'"),
        (ManifestRow("real/a.jpg", 0, "cc3m", "val", "vae"), "unknown family 'vae'"),
        (ManifestRow("/abs/a.jpg", 0, "cc3m", "val"), "must be relative"),
        (ManifestRow("real/a.jpg", True, "cc3m", "val"), "unknown label 'True'"),
    ],
)
def test_write_refuses_invalid_rows_and_writes_nothing(dataset, bad_row, problem):
    with pytest.raises(ManifestError, match=problem):
        write_manifest([bad_row], dataset)
    assert not (dataset / MANIFEST_NAME).exists()
    assert stray_temp_files(dataset) == []


def test_failed_write_keeps_the_previous_manifest(dataset, rows):
    path = write_manifest(rows, dataset)
    before = path.read_bytes()
    with pytest.raises(ManifestError, match="duplicate path"):
        write_manifest([*rows, rows[0]], dataset)
    assert path.read_bytes() == before
    assert stray_temp_files(dataset) == []


def test_write_reports_lines_of_the_sorted_file(dataset, rows):
    bad = ManifestRow("real/a.jpg", 0, "cc3m", "nope")
    others = [r for r in rows if r.path != "real/a.jpg"]
    with pytest.raises(ManifestError) as info:
        write_manifest([bad, *others], dataset)
    line = 2 + sorted(r.path for r in [bad, *others]).index("real/a.jpg")
    assert f"line {line}: unknown split 'nope'" in str(info.value)
    assert str(dataset / MANIFEST_NAME) in str(info.value)


def test_write_without_check_files_accepts_missing_images(tmp_path):
    rows = [ManifestRow("later.png", FAKE, "gen", "train")]
    path = write_manifest(rows, tmp_path / "m.csv", check_files=False)
    assert read_manifest(path, check_files=False) == rows


def test_validate_rows_names_origin_and_counts_lines_from_2():
    rows = [
        ManifestRow("a.png", 0, "x", "val"),
        ManifestRow("b.png", 0, "x", "val"),
        ManifestRow("a.png", 1, "x", "val"),
    ]
    with pytest.raises(ManifestError) as info:
        validate_rows(rows, origin="somewhere.csv")
    assert str(info.value).startswith("somewhere.csv: ")
    assert "line 4: duplicate path 'a.png' (first on line 2)" in str(info.value)
    validate_rows(rows[:2])  # no root: files are not checked, and the rows are fine


# --- select / summarize ------------------------------------------------------------------------


def test_select_filters_by_split_label_and_source(rows):
    assert {r.path for r in select(rows, split="train")} == {
        "real/b.png",
        "fake/c.png",
        "fake/e.png",
    }
    assert {r.path for r in select(rows, label=FAKE, split="train")} == {"fake/c.png", "fake/e.png"}
    assert [r.path for r in select(rows, sources=["stylegan3"])] == ["fake/e.png"]
    assert select(rows, sources=[]) == []
    assert select(rows) == rows


def test_select_rejects_unknown_split(rows):
    with pytest.raises(UserError, match="unknown split 'test'"):
        select(rows, split="test")


def test_summarize_counts_per_split_source_and_label(rows):
    assert summarize(rows) == {
        "train": {
            "cc3m": {"real": 1, "fake": 0},
            "sd-v15": {"real": 0, "fake": 1},
            "stylegan3": {"real": 0, "fake": 1},
        },
        "val": {"cc3m": {"real": 1, "fake": 0}, "sd-v15": {"real": 0, "fake": 1}},
    }
    assert list(summarize(reversed(rows))) == ["train", "val"]


def test_is_fake():
    assert ManifestRow("a.png", FAKE, "x", "val").is_fake
    assert not ManifestRow("a.png", REAL, "x", "val").is_fake
