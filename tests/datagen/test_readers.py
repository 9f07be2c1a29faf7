"""Tests for datagen/readers.py (other layouts -> manifest rows) and datagen/families.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from datagen.families import infer_family
from datagen.manifest import (
    FAKE,
    FAMILIES,
    REAL,
    ManifestError,
    ManifestRow,
    read_manifest,
    write_manifest,
)
from datagen.readers import (
    is_image_file,
    rows_from_class_folders,
    rows_from_original_metadata,
    rows_from_real_fake_folders,
    walk_images,
)
from rfd_common.errors import UserError


def make_image(path: Path, color: tuple[int, int, int] = (10, 120, 240)) -> Path:
    """A tiny but real image; the format follows the suffix (``.PNG`` too)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG"}.get(path.suffix.lower(), "PNG")
    Image.new("RGB", (4, 4), color).save(path, format=fmt)
    return path


class _ReversedScandir:
    """Stands in for ``os.scandir``'s iterator, yielding the entries in reverse name order."""

    def __init__(self, path):
        with _real_scandir(path) as entries:
            self._entries = iter(sorted(entries, key=lambda e: e.name, reverse=True))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._entries)

    def close(self):
        pass


_real_scandir = os.scandir


@pytest.fixture
def reversed_listing(monkeypatch):
    """Make the file system list folders in reverse order (os.walk reads os.scandir)."""
    monkeypatch.setattr(os, "scandir", _ReversedScandir)
    monkeypatch.setattr(os, "listdir", lambda path=".": sorted(_real_listdir(path), reverse=True))


_real_listdir = os.listdir


# --- is_image_file / walk_images ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.png", True),
        ("a.jpg", True),
        ("a.JPEG", True),
        ("img.v2.final.PNG", True),
        ("photo.2021.06.01.webp", True),
        ("scan.tif", True),
        ("scan.tiff", True),
        ("x.bmp", True),
        (".hidden.png", False),
        ("._a.png", False),
        (".png", False),
        ("notes.txt", False),
        ("a.png.txt", False),
        ("archive.tar.gz", False),
        ("README", False),
        ("manifest.csv", False),
    ],
)
def test_is_image_file(name, expected):
    assert is_image_file(Path("some/folder") / name) is expected


@pytest.fixture
def mixed_tree(tmp_path: Path) -> Path:
    for name in ("b/z.png", "b/a.jpg", "a/c.PNG", "a/sub/d.v1.2.png", "top.png"):
        make_image(tmp_path / name)
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    make_image(tmp_path / "a" / ".hidden.png")
    make_image(tmp_path / ".cache" / "thumb.png")
    return tmp_path


# os.walk is top-down: a folder's own files, then its sub-folders, each level sorted by name.
EXPECTED_WALK = ["top.png", "a/c.PNG", "a/sub/d.v1.2.png", "b/a.jpg", "b/z.png"]


def test_walk_images_is_sorted_and_skips_non_images(mixed_tree):
    found = [p.relative_to(mixed_tree).as_posix() for p in walk_images(mixed_tree)]
    assert found == EXPECTED_WALK


def test_walk_images_does_not_depend_on_listing_order(mixed_tree, reversed_listing):
    assert os.listdir(mixed_tree)[0] == "top.png"  # the fixture does reverse the listing
    with os.scandir(mixed_tree) as entries:
        assert next(entries).name == "top.png"
    found = [p.relative_to(mixed_tree).as_posix() for p in walk_images(mixed_tree)]
    assert found == EXPECTED_WALK


def test_walk_images_follows_symlinked_folders_once(tmp_path):
    """Reference: the tree made here. A linked folder's images are listed under the link (as
    written), a link back up the tree does not loop, a second link to a folder adds nothing."""
    store = tmp_path / "store"
    make_image(store / "reals" / "r.png")
    top = tmp_path / "data"
    make_image(top / "a.png")
    try:
        (top / "linked").symlink_to(store / "reals", target_is_directory=True)
        (top / "linked_again").symlink_to(store / "reals", target_is_directory=True)
        (store / "reals" / "loop").symlink_to(top, target_is_directory=True)
    except OSError:
        pytest.skip("symlinks are not supported here")
    found = [p.relative_to(top).as_posix() for p in walk_images(top)]
    assert found == ["a.png", "linked/r.png"]
    inside = [p.relative_to(top / "linked").as_posix() for p in walk_images(top / "linked")]
    assert inside == ["r.png", "loop/a.png"]  # up the loop once, then back at a listed folder


def test_walk_images_names_a_folder_it_cannot_list(mixed_tree, monkeypatch):
    """Reference: the folder made unlistable here; it is named, not silently left out."""
    real_scandir = os.scandir

    def scandir(path="."):
        if Path(path) == mixed_tree / "a" / "sub":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(UserError, match="cannot list this folder") as info:
        list(walk_images(mixed_tree))
    assert str(mixed_tree / "a" / "sub") in str(info.value)
    assert "Permission denied" in str(info.value)


# --- rows_from_class_folders ----------------------------------------------------------------


@pytest.fixture
def wang_tree(tmp_path: Path) -> Path:
    """A CNNDetection-style tree: generators, one with category folders, plus distractors."""
    root = tmp_path / "cnn_test"
    for name in (
        "progan/airplane/0_real/r1.png",
        "progan/airplane/1_fake/f1.png",
        "progan/cat/0_real/r2.png",
        "progan/cat/1_fake/f2.png",
        "stylegan3-t-ffhqu-1024x1024/0_real/img.v2.final.PNG",
        "stylegan3-t-ffhqu-1024x1024/1_fake/b.jpg",
        "IF-ddim-50-15K/1_fake/x.jpeg",
        "IF-ddim-50-15K/0_real/y.jpg",
    ):
        make_image(root / name)
    (root / "progan" / "airplane" / "0_real" / "notes.txt").write_text("x")
    make_image(root / "progan" / "airplane" / "1_fake" / ".hidden.png")
    make_image(root / "progan" / "preview.png")  # not inside 0_real/1_fake: ignored
    make_image(root / "progan" / "1_fake" / ".thumbs" / "t.png")  # hidden folder: ignored
    return root


EXPECTED_WANG = [
    ("IF-ddim-50-15K/0_real/y.jpg", REAL, "IF-ddim-50-15K-real", "real"),
    ("IF-ddim-50-15K/1_fake/x.jpeg", FAKE, "IF-ddim-50-15K", "diffusion"),
    ("progan/airplane/0_real/r1.png", REAL, "progan-real", "real"),
    ("progan/airplane/1_fake/f1.png", FAKE, "progan", "gan"),
    ("progan/cat/0_real/r2.png", REAL, "progan-real", "real"),
    ("progan/cat/1_fake/f2.png", FAKE, "progan", "gan"),
    (
        "stylegan3-t-ffhqu-1024x1024/0_real/img.v2.final.PNG",
        REAL,
        "stylegan3-t-ffhqu-1024x1024-real",
        "real",
    ),
    ("stylegan3-t-ffhqu-1024x1024/1_fake/b.jpg", FAKE, "stylegan3-t-ffhqu-1024x1024", "gan"),
]


def _as_tuples(rows: list[ManifestRow]) -> list[tuple]:
    return sorted((r.path, r.label, r.source, r.family) for r in rows)


def test_class_folders_with_generators_and_categories(wang_tree):
    rows = rows_from_class_folders(wang_tree)
    assert _as_tuples(rows) == EXPECTED_WANG
    assert {r.split for r in rows} == {"val"}


@pytest.mark.parametrize("split", ["train", "val"])
def test_class_folders_split(wang_tree, split):
    assert {r.split for r in rows_from_class_folders(wang_tree, split=split)} == {split}


def test_class_folders_do_not_depend_on_listing_order(wang_tree, reversed_listing):
    assert _as_tuples(rows_from_class_folders(wang_tree)) == EXPECTED_WANG


def test_class_folders_rows_write_and_read_back(wang_tree):
    rows = rows_from_class_folders(wang_tree, split="train")
    write_manifest(rows, wang_tree)
    assert read_manifest(wang_tree) == sorted(rows, key=lambda r: r.path)


def test_flat_class_folders_take_the_root_name_as_source(tmp_path):
    root = tmp_path / "biggan"
    make_image(root / "0_real" / "a.png")
    make_image(root / "1_fake" / "b.png")
    rows = rows_from_class_folders(root)
    assert _as_tuples(rows) == [
        ("0_real/a.png", REAL, "biggan-real", "real"),
        ("1_fake/b.png", FAKE, "biggan", "gan"),
    ]


@pytest.mark.parametrize("spelling", [".", "./", "sub/.."])
def test_flat_class_folders_given_as_dot(tmp_path, monkeypatch, spelling):
    root = tmp_path / "gaugan"
    make_image(root / "1_fake" / "b.png")
    (root / "sub").mkdir()
    monkeypatch.chdir(root)
    rows = rows_from_class_folders(Path(spelling))
    assert [(r.path, r.source, r.family) for r in rows] == [("1_fake/b.png", "gaugan", "gan")]


def test_class_folders_relative_to_a_given_root(wang_tree):
    rows = rows_from_class_folders(wang_tree / "progan", root=wang_tree.parent)
    assert sorted(r.path for r in rows) == [
        "cnn_test/progan/airplane/0_real/r1.png",
        "cnn_test/progan/airplane/1_fake/f1.png",
        "cnn_test/progan/cat/0_real/r2.png",
        "cnn_test/progan/cat/1_fake/f2.png",
    ]
    # 0_real/1_fake sit below "airplane", so the source is the first folder below ``folder``
    assert {r.source for r in rows} == {"airplane", "airplane-real", "cat", "cat-real"}


def test_class_folders_outside_the_root_are_refused(wang_tree, tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    with pytest.raises(UserError, match="outside the dataset root"):
        rows_from_class_folders(wang_tree, root=other)


def test_symlinked_images_keep_their_path_under_the_root(tmp_path):
    store = tmp_path / "store"
    target = make_image(store / "real.png")
    root = tmp_path / "data"
    (root / "gen" / "0_real").mkdir(parents=True)
    try:
        (root / "gen" / "0_real" / "a.png").symlink_to(target)
    except OSError:
        pytest.skip("symlinks are not supported here")
    rows = rows_from_class_folders(root)
    assert [(r.path, r.source) for r in rows] == [("gen/0_real/a.png", "gen-real")]


def test_class_folders_unknown_split(wang_tree):
    with pytest.raises(UserError, match="unknown split 'test'"):
        rows_from_class_folders(wang_tree, split="test")


def test_class_folders_missing_folder(tmp_path):
    with pytest.raises(UserError, match="folder not found") as info:
        rows_from_class_folders(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(info.value)


@pytest.mark.parametrize(
    "files",
    [
        [],
        ["gen/real/a.png", "gen/fake/b.png"],  # wrong folder names
        ["gen/0_real/notes.txt", "gen/1_fake/.hidden.png"],  # no images in class folders
        ["gen/0_real"],  # a file named like the class folder
    ],
)
def test_class_folders_without_images(tmp_path, files):
    for name in files:
        path = tmp_path / name
        if path.suffix == ".png":
            make_image(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("x")
    with pytest.raises(UserError, match="no images found in 0_real/1_fake") as info:
        rows_from_class_folders(tmp_path)
    assert str(tmp_path) in str(info.value)


# --- rows_from_original_metadata --------------------------------------------------------------


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture
def sentry(tmp_path: Path) -> Path:
    """The original project's layout: ImageData/ plus MetaData/{train,val}/<source>.csv."""
    root = tmp_path / "sentry-dataset"
    for name in (
        "ImageData/train/cc3m/r1.jpg",
        "ImageData/train/cc3m/r2.jpg",
        "ImageData/train/sd-v15/f1.png",
        "ImageData/val/cogview2-22K/f2.png",
        "ImageData/val/cc3m/r3.jpg",
    ):
        make_image(root / name)
    meta = root / "MetaData"
    # The ORIGINAL wrote 1 for real and 0 for fake.
    _write_lines(
        meta / "train" / "cc3m.csv",
        [
            "./sentry-dataset/ImageData/train/cc3m/r1.jpg 1",
            "/old/machine/sentry-dataset/ImageData/train/cc3m/r2.jpg 1",
        ],
    )
    _write_lines(
        meta / "train" / "sd-v15.csv", ["./sentry-dataset/ImageData/train/sd-v15/f1.png 0"]
    )
    _write_lines(meta / "val" / "cogview2-22K.csv", ["ImageData/val/cogview2-22K/f2.png 0", ""])
    _write_lines(meta / "val" / "cc3m.csv", ["ImageData/val/cc3m/r3.jpg 1"])
    (meta / "train" / "README.txt").write_text("not a csv")
    return root


def test_original_metadata_rows(sentry):
    rows = rows_from_original_metadata(sentry / "MetaData")
    assert sorted(rows) == sorted(
        [
            ManifestRow("ImageData/train/cc3m/r1.jpg", REAL, "cc3m", "train", "real"),
            ManifestRow("ImageData/train/cc3m/r2.jpg", REAL, "cc3m", "train", "real"),
            ManifestRow("ImageData/train/sd-v15/f1.png", FAKE, "sd-v15", "train", "diffusion"),
            ManifestRow(
                "ImageData/val/cogview2-22K/f2.png", FAKE, "cogview2-22K", "val", "autoregressive"
            ),
            ManifestRow("ImageData/val/cc3m/r3.jpg", REAL, "cc3m", "val", "real"),
        ]
    )


def test_original_metadata_rows_are_valid_under_the_root(sentry):
    rows = rows_from_original_metadata(sentry / "MetaData", root=sentry)
    write_manifest(rows, sentry)
    assert len(read_manifest(sentry)) == 5


@pytest.mark.parametrize(("original", "ours"), [("0", FAKE), ("1", REAL)])
def test_original_labels_are_inverted(tmp_path, original, ours):
    _write_lines(tmp_path / "MetaData" / "val" / "gen.csv", [f"ImageData/val/gen/a.png {original}"])
    (row,) = rows_from_original_metadata(tmp_path / "MetaData")
    assert row.label == ours
    assert row.is_fake is (original == "0")
    assert (row.family == "real") is (original == "1")


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("./sentry-dataset/ImageData/train/cc3m/x.jpg", "ImageData/train/cc3m/x.jpg"),
        ("/home/someone/data/ImageData/train/cc3m/x.jpg", "ImageData/train/cc3m/x.jpg"),
        ("..\\data\\ImageData\\train\\cc3m\\x.jpg", "ImageData/train/cc3m/x.jpg"),
        ("ImageData/train/my photos/x 1.jpg", "ImageData/train/my photos/x 1.jpg"),
        ("./other/x.jpg", "other/x.jpg"),
        ("other/./x.jpg", "other/x.jpg"),
    ],
)
def test_original_paths_are_made_relative(tmp_path, written, expected):
    _write_lines(tmp_path / "MetaData" / "train" / "cc3m.csv", [f"{written} 1"])
    (row,) = rows_from_original_metadata(tmp_path / "MetaData")
    assert row.path == expected


def test_original_absolute_path_inside_the_root(tmp_path):
    image = make_image(tmp_path / "pics" / "a.png")
    _write_lines(tmp_path / "MetaData" / "val" / "gen.csv", [f"{image} 0"])
    (row,) = rows_from_original_metadata(tmp_path / "MetaData")
    assert row.path == "pics/a.png"


def test_original_absolute_path_outside_the_root(tmp_path):
    _write_lines(tmp_path / "root" / "MetaData" / "val" / "gen.csv", ["/elsewhere/a.png 0"])
    with pytest.raises(UserError, match="outside the dataset root"):
        rows_from_original_metadata(tmp_path / "root" / "MetaData")


def test_original_root_can_be_given(tmp_path):
    _write_lines(tmp_path / "meta" / "val" / "gen.csv", [f"{tmp_path / 'data' / 'a.png'} 0"])
    (row,) = rows_from_original_metadata(tmp_path / "meta", root=tmp_path / "data")
    assert row.path == "a.png"


@pytest.mark.parametrize(
    "line",
    ["ImageData/val/gen/a.png\t0", "ImageData/val/gen/a.png   0", "  ImageData/val/gen/a.png 0  "],
)
def test_original_whitespace_variants(tmp_path, line):
    _write_lines(tmp_path / "MetaData" / "val" / "gen.csv", [line])
    (row,) = rows_from_original_metadata(tmp_path / "MetaData")
    assert (row.path, row.label) == ("ImageData/val/gen/a.png", FAKE)


def test_original_csv_with_byte_order_mark_and_crlf(tmp_path):
    path = tmp_path / "MetaData" / "train" / "gen.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes("\ufeffother/a.png 0\r\nother/b.png 1\r\n".encode())
    rows = rows_from_original_metadata(tmp_path / "MetaData")
    assert [(r.path, r.label) for r in rows] == [("other/a.png", FAKE), ("other/b.png", REAL)]


@pytest.mark.parametrize(
    "bad_line",
    [
        "ImageData/val/gen/a.png 2",
        "ImageData/val/gen/a.png fake",
        "ImageData/val/gen/a.png",
        "ImageData/val/gen/a.png,0",
        "0",
        "ImageData/val/gen/a.png -1",
    ],
)
def test_original_bad_line_names_csv_and_line(tmp_path, bad_line):
    csv_path = _write_lines(
        tmp_path / "MetaData" / "val" / "gen.csv",
        ["ImageData/val/gen/ok.png 1", "", bad_line, "ImageData/val/gen/ok2.png 0"],
    )
    with pytest.raises(ManifestError) as info:
        rows_from_original_metadata(tmp_path / "MetaData")
    message = str(info.value)
    assert message.startswith(f"{csv_path}: line 3: ")
    assert repr(bad_line.strip()) in message
    assert "0 (fake) or 1 (real)" in message


def test_original_non_utf8_csv(tmp_path):
    path = tmp_path / "MetaData" / "val" / "gen.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"caf\xe9.png 0\n")
    with pytest.raises(ManifestError, match="not a UTF-8") as info:
        rows_from_original_metadata(tmp_path / "MetaData")
    assert str(path) in str(info.value)


def test_original_missing_metadata_folder(tmp_path):
    with pytest.raises(UserError, match="MetaData folder not found") as info:
        rows_from_original_metadata(tmp_path / "MetaData")
    assert str(tmp_path / "MetaData") in str(info.value)


@pytest.mark.parametrize("layout", [[], ["test/gen.csv"], ["train/gen.txt"], ["gen.csv"]])
def test_original_without_csv_files(tmp_path, layout):
    meta = tmp_path / "MetaData"
    meta.mkdir()
    for name in layout:
        _write_lines(meta / name, ["a.png 0"])
    with pytest.raises(UserError, match=r"no train/\*\.csv or val/\*\.csv"):
        rows_from_original_metadata(meta)


def test_original_only_train_and_val_folders_are_read(tmp_path):
    meta = tmp_path / "MetaData"
    _write_lines(meta / "train" / "gen.csv", ["a.png 0"])
    _write_lines(meta / "test" / "gen.csv", ["b.png 0"])
    assert [(r.path, r.split) for r in rows_from_original_metadata(meta)] == [("a.png", "train")]


# --- families -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "family"),
    [
        ("stylegan3-t-ffhqu-1024x1024", "gan"),
        ("IF-ddim-50-15K", "diffusion"),
        ("cogview2-22K", "autoregressive"),
        ("progan", "gan"),
        ("StyleGAN2", "gan"),
        ("biggan", "gan"),
        ("cyclegan", "gan"),
        ("gaugan", "gan"),
        ("stargan", "gan"),
        ("deepfake", "gan"),
        ("whichfaceisreal", "gan"),
        ("san", "gan"),
        ("crn", "gan"),
        ("imle", "gan"),
        ("seeingdark", "gan"),
        ("sd-v15", "diffusion"),
        ("sd_v21", "diffusion"),
        ("SDv15R", "diffusion"),
        ("sdxl-base", "diffusion"),
        ("stable_diffusion_v_1_4", "diffusion"),
        ("Midjourneyv5-5K", "diffusion"),
        ("midjourney", "diffusion"),
        ("glide_100_27", "diffusion"),
        ("ldm_200_cfg", "diffusion"),
        ("guided", "diffusion"),
        ("ADM", "diffusion"),
        ("wukong", "diffusion"),
        ("DALLE-3", "diffusion"),
        ("dalle_mini", "autoregressive"),
        ("dall-e-mini", "autoregressive"),
        ("vqgan-imagenet", "autoregressive"),
        ("parti", "autoregressive"),
        ("imagenet_ai_0419_biggan", "gan"),
        ("imagenet_ai_0419_sdv4", "diffusion"),
        ("imagenet_ai_0424_vqdm", "diffusion"),
        ("imagenet_glide", "diffusion"),
        ("my-new-generator", "unknown"),
        ("imagenet", "unknown"),
        ("partial", "unknown"),
        ("sandbox", "unknown"),
        ("", "unknown"),
    ],
)
def test_infer_family_of_fake_sources(source, family):
    assert infer_family(source, FAKE) == family


@pytest.mark.parametrize(
    "source", ["cc3m", "stylegan3-t-ffhqu-1024x1024", "IF-ddim-50-15K", "cogview2-22K", "x"]
)
def test_any_real_source_is_real(source):
    assert infer_family(source, REAL) == "real"


@pytest.mark.parametrize("source", ["progan", "sd-v15", "cogview2", "??", "imagenet_ai_0419_sdv4"])
def test_inferred_families_are_valid_manifest_families(source):
    assert infer_family(source, FAKE) in FAMILIES
    assert infer_family(source, FAKE) != "real"


def test_real_and_fake_folders_as_universalfakedetect_takes_them(tmp_path):
    make_image(tmp_path / "progan" / "0_real" / "a.png")
    make_image(tmp_path / "progan" / "1_fake" / "sub" / "b.png")
    root, rows = rows_from_real_fake_folders(
        tmp_path / "progan" / "0_real", tmp_path / "progan" / "1_fake"
    )
    assert root == tmp_path / "progan"
    assert _as_tuples(rows) == [
        ("0_real/a.png", REAL, "progan-real", "real"),
        ("1_fake/sub/b.png", FAKE, "progan", "gan"),
    ]
    with pytest.raises(UserError, match=r"--fake_path .*: folder not found"):
        rows_from_real_fake_folders(tmp_path / "progan" / "0_real", tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"--real_path .*empty: no images there"):
        rows_from_real_fake_folders(tmp_path / "empty", tmp_path / "progan" / "1_fake")
