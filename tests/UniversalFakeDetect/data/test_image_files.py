"""Images as users have them: every format Pillow opens, high bit depths, damaged files and
wrong suffixes, through ``read_image``, ``detect`` and ``test --real_path/--fake_path``.

The references are arrays this test makes (and, for probabilities, torchvision's own
``Resize``/``CenterCrop``/``ToTensor`` of those arrays fed to the same detector)."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
import torch
from PIL import Image
from torchvision import transforms

from datagen.readers import IMAGE_SUFFIXES, is_image_file, walk_images
from UniversalFakeDetect import detect
from UniversalFakeDetect import test as test_cli
from UniversalFakeDetect.checkpoint import load_detector
from UniversalFakeDetect.data.datasets import UnreadableImageError, read_image
from UniversalFakeDetect.models.detector import Detector

LOAD, CROP = 32, 28
HEAD_ARGS = ["--arch", "Imagenet:resnet18", "--weights", "none", "--gpu_ids", "-1"]
SIZE_ARGS = ["--loadSize", str(LOAD), "--cropSize", str(CROP)]


def pillow_opens() -> list[str]:
    """Every suffix Pillow registers for a format it can open (its own registry)."""
    return sorted(s for s, f in Image.registered_extensions().items() if f in Image.OPEN)


def rgb_array(seed: int, height: int = 30, width: int = 40) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def gray_array(seed: int, height: int = 30, width: int = 40) -> np.ndarray:
    """8-bit gray noise that holds both extremes."""
    array = np.random.default_rng(seed).integers(0, 256, (height, width), dtype=np.uint8)
    array[0, :2] = (0, 255)
    return array


def palette_image(seed: int) -> tuple[Image.Image, np.ndarray]:
    """A 16-colour palette image (stored losslessly by GIF) and its RGB pixels."""
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, (16, 3), dtype=np.uint8)
    index = rng.integers(0, 16, (30, 40), dtype=np.uint8)
    image = Image.fromarray(index, mode="P")
    image.putpalette(palette.ravel().tolist())
    return image, palette[index]


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bare linear head for a 512-wide backbone (ResNet-18)."""
    path = tmp_path_factory.mktemp("head") / "head.pth"
    generator = torch.Generator().manual_seed(1)
    torch.save({"weight": torch.randn(1, 512, generator=generator), "bias": torch.zeros(1)}, path)
    return path


@pytest.fixture(scope="module")
def detector(head: Path) -> Detector:
    """The detector ``detect``/``test`` build from ``head`` (random backbone, seed 0)."""
    model, _ = load_detector(head, "Imagenet:resnet18", "none", crop_size=CROP, seed=0)
    return model


def reference_probs(detector: Detector, pixels: dict[str, np.ndarray]) -> dict[str, float]:
    """P(fake) on UniversalFakeDetect's test view of each array (torchvision's own)."""
    view = transforms.Compose(
        [transforms.Resize(LOAD), transforms.CenterCrop(CROP), transforms.ToTensor()]
    )
    batch = torch.stack([view(Image.fromarray(p)) for p in pixels.values()])
    with torch.no_grad():
        probs = torch.sigmoid(detector(batch)).flatten().tolist()
    return dict(zip(pixels, probs, strict=True))


def pillow_error(path: Path) -> str:
    """The message Pillow's decoder gives for ``path`` (the reason users should see)."""
    try:
        with Image.open(path) as image:
            image.load()
    except Exception as exc:  # whatever Pillow raises for this file
        return str(exc)
    raise AssertionError(f"{path}: Pillow decodes it")


# --- which files are images -------------------------------------------------------------------


def test_every_format_pillow_opens_is_an_image_file(tmp_path: Path) -> None:
    """Reference: Pillow's registry, ``registered_extensions()`` filtered by ``Image.OPEN``;
    files of other suffixes (text, PDF, which Pillow only writes) are passed over by name."""
    suffixes = pillow_opens()
    assert {".gif", ".jfif", ".ppm", ".tga", ".png", ".jpg", ".tif"} <= set(suffixes)
    assert set(suffixes) == IMAGE_SUFFIXES
    for suffix in suffixes:
        assert is_image_file(Path(f"photo{suffix}")), suffix
        assert is_image_file(Path(f"a.b{suffix.upper()}")), suffix
    for name in ("notes.txt", "scan.pdf", "photo", ".hidden.png"):
        assert not is_image_file(Path(name)), name
    for suffix in suffixes:
        (tmp_path / f"photo{suffix}").touch()
    for name in ("notes.txt", "scan.pdf"):
        (tmp_path / "sub" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "sub" / name).touch()
    passed_over: list[Path] = []
    found = list(walk_images(tmp_path, passed_over))
    assert found == sorted(tmp_path / f"photo{s}" for s in suffixes)
    assert passed_over == [tmp_path / "sub" / "notes.txt", tmp_path / "sub" / "scan.pdf"]


# --- high bit depths --------------------------------------------------------------------------


def _netpbm16(path: Path, gray: np.ndarray) -> None:
    """A 16-bit PGM written by hand (Netpbm: maxval 65535, big-endian samples)."""
    header = f"P5\n{gray.shape[1]} {gray.shape[0]}\n65535\n".encode()
    path.write_bytes(header + (gray.astype(">u2") * 257).tobytes())


def _floats(gray: np.ndarray) -> np.ndarray:
    """Float32 values in [0, 1] whose ``round(v * 255)`` is ``gray`` (off-grid by < 0.4/255)."""
    jitter = np.random.default_rng(5).uniform(-0.4, 0.4, gray.shape)
    return np.clip((gray + jitter) / 255, 0, 1).astype(np.float32)


GRAY_WRITERS: dict[str, Callable[[Path, np.ndarray], None]] = {
    "png-16bit-pillow": lambda p, g: Image.fromarray(g.astype(np.uint16) * 257).save(
        p.with_suffix(".png")
    ),
    "tif-16bit-pillow": lambda p, g: Image.fromarray(g.astype(np.uint16) * 257).save(
        p.with_suffix(".tif")
    ),
    "tif-16bit-big-endian": lambda p, g: tifffile.imwrite(
        p.with_suffix(".tif"), g.astype(np.uint16) * 257, byteorder=">"
    ),
    "png-16bit-cv2": lambda p, g: cv2.imwrite(
        str(p.with_suffix(".png")), g.astype(np.uint16) * 257
    ),
    "pgm-16bit": lambda p, g: _netpbm16(p.with_suffix(".pgm"), g),
    "tif-float32-tifffile": lambda p, g: tifffile.imwrite(p.with_suffix(".tif"), _floats(g)),
    "tif-float32-pillow": lambda p, g: Image.fromarray(_floats(g)).save(p.with_suffix(".tif")),
    "tif-int16-signed": lambda p, g: tifffile.imwrite(
        p.with_suffix(".tif"), np.rint(g * (32767 / 255)).astype(np.int16)
    ),
    "tif-int32-signed": lambda p, g: tifffile.imwrite(
        p.with_suffix(".tif"), np.rint(g * ((2**31 - 1) / 255)).astype(np.int32)
    ),
    "tif-uint32": lambda p, g: tifffile.imwrite(
        p.with_suffix(".tif"),
        g.astype(np.uint32) * 16843009,  # (2**32 - 1) / 255
    ),
}


@pytest.mark.parametrize("writer", list(GRAY_WRITERS))
def test_high_bit_depth_gray_decodes_to_the_8bit_pixels(writer: str, tmp_path: Path) -> None:
    """Reference: the 8-bit gray array made here, stored at 16/32 bits as ``v`` times the
    full scale / 255 (``v * 257`` for 16 bits), or as floats with ``round(f * 255) == v``;
    equal too to the same array saved as an 8-bit PNG."""
    gray = gray_array(3)
    GRAY_WRITERS[writer](tmp_path / "image", gray)
    (path,) = tmp_path.iterdir()
    decoded = np.asarray(read_image(path))
    assert decoded.dtype == np.uint8 and decoded.shape == (*gray.shape, 3)
    assert np.array_equal(decoded, np.repeat(gray[..., None], 3, axis=2))
    Image.fromarray(gray).save(tmp_path / "eight_bit.png")
    assert np.array_equal(decoded, np.asarray(read_image(tmp_path / "eight_bit.png")))


RGB_WRITERS: dict[str, Callable[[Path, np.ndarray], None]] = {
    "png-16bit-cv2": lambda p, c: cv2.imwrite(
        str(p.with_suffix(".png")),
        c[..., ::-1].astype(np.uint16) * 257,  # cv2 writes BGR
    ),
    "tif-16bit-tifffile": lambda p, c: tifffile.imwrite(
        p.with_suffix(".tif"), c.astype(np.uint16) * 257, photometric="rgb"
    ),
    "tif-16bit-big-endian": lambda p, c: tifffile.imwrite(
        p.with_suffix(".tif"), c.astype(np.uint16) * 257, photometric="rgb", byteorder=">"
    ),
}


@pytest.mark.parametrize("writer", list(RGB_WRITERS))
def test_16bit_rgb_decodes_to_the_8bit_pixels(writer: str, tmp_path: Path) -> None:
    """Reference: the 8-bit RGB array made here, stored at 16 bits as ``v * 257``."""
    pixels = rgb_array(4)
    RGB_WRITERS[writer](tmp_path / "image", pixels)
    (path,) = tmp_path.iterdir()
    assert np.array_equal(np.asarray(read_image(path)), pixels)


# --- damaged files ----------------------------------------------------------------------------


def test_damaged_files_raise_with_the_decoders_reason(tmp_path: Path) -> None:
    """Reference: the message Pillow itself raises when this test decodes each file."""
    jpeg = tmp_path / "whole.jpg"
    Image.fromarray(rgb_array(6)).save(jpeg, quality=90)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(jpeg.read_bytes()[: jpeg.stat().st_size // 2])
    empty = tmp_path / "empty.png"
    empty.touch()
    for path, needle in ((truncated, "truncated"), (empty, "cannot identify image file")):
        with pytest.raises(UnreadableImageError) as caught:
            read_image(path)
        assert caught.value.path == path
        assert pillow_error(path) in caught.value.reason and needle in caught.value.reason
        assert str(path) in str(caught.value) and "manifest" not in str(caught.value)


# --- detect and test on a folder as users have it ---------------------------------------------


def _user_folder(folder: Path) -> dict[str, np.ndarray | None]:
    """Write a folder of images in many formats; the pixels each should decode to (``None``
    where the format is lossy and Pillow's own decoding of the file is the reference)."""
    folder.mkdir(parents=True)
    expected: dict[str, np.ndarray | None] = {}
    gif, gif_pixels = palette_image(10)
    gif.save(folder / "palette.gif")
    expected["palette.gif"] = gif_pixels
    for index, (name, fmt) in enumerate([("a.ppm", "PPM"), ("b.tga", "TGA"), ("c.png", "PNG")]):
        expected[name] = rgb_array(20 + index)
        Image.fromarray(expected[name]).save(folder / name, format=fmt)
    Image.fromarray(rgb_array(30)).save(folder / "d.jfif", format="JPEG", quality=90)
    expected["d.jfif"] = None
    expected["png_named.jpg"] = rgb_array(31, 40, 30)  # portrait; PNG content, .jpg name
    Image.fromarray(expected["png_named.jpg"]).save(folder / "png_named.jpg", format="PNG")
    gray = gray_array(32)
    Image.fromarray(gray.astype(np.uint16) * 257).save(folder / "gray16.png")
    expected["gray16.png"] = np.repeat(gray[..., None], 3, axis=2)
    (folder / "notes.txt").write_text("not an image")
    return expected


def _pixels_of(path: Path, expected: np.ndarray | None) -> np.ndarray:
    if expected is not None:
        return expected
    with Image.open(path) as image:  # as UniversalFakeDetect's validate.py reads it
        return np.asarray(image.convert("RGB"))


def test_detect_scores_every_format_and_names_damaged_files(
    head: Path, detector: Detector, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reference: P(fake) of torchvision's test view of the arrays written here (for the
    .jfif, of Pillow's decoding as validate.py does); for damaged files, Pillow's message."""
    folder = tmp_path / "inbox"
    expected = _user_folder(folder)
    jpeg = tmp_path / "whole.jpg"
    Image.fromarray(rgb_array(40)).save(jpeg, quality=90)
    (folder / "truncated.jpg").write_bytes(jpeg.read_bytes()[: jpeg.stat().st_size // 2])
    (folder / "empty.png").touch()
    out = tmp_path / "verdicts.json"
    argv = [str(folder), "--ckpt", str(head), *HEAD_ARGS, *SIZE_ARGS, "--output", str(out)]
    assert detect.main(argv) == 0
    err = capsys.readouterr().err
    results = {Path(r["path"]).name: r for r in json.loads(out.read_text())}
    assert set(results) == {*expected, "truncated.jpg", "empty.png"}
    probs = reference_probs(detector, {n: _pixels_of(folder / n, p) for n, p in expected.items()})
    for name, prob in probs.items():
        assert results[name]["prob_fake"] == pytest.approx(prob, abs=5e-6), name
        assert results[name]["verdict"] == ("fake" if prob >= 0.5 else "real"), name
        assert results[name]["error"] is None
    for name in ("truncated.jpg", "empty.png"):
        reason = pillow_error(folder / name)
        assert results[name]["verdict"] == "unreadable" and results[name]["prob_fake"] is None
        assert reason in results[name]["error"]
        assert f"{folder / name}: cannot read it as an image" in err and reason in err
    assert "truncated" in results["truncated.jpg"]["error"]
    assert "cannot identify image file" in results["empty.png"]["error"]
    assert str(folder / "notes.txt") in err  # passed over by name, not silently
    assert "manifest" not in err.lower()


def test_detect_on_only_unreadable_files_fails(
    head: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reference: the file's own state (zero bytes): nothing scored, exit code 2, named."""
    empty = tmp_path / "empty.jpg"
    empty.touch()
    out = tmp_path / "verdicts.csv"
    argv = [str(empty), "--ckpt", str(head), *HEAD_ARGS, *SIZE_ARGS, "--output", str(out)]
    assert detect.main(argv) == 2
    err = capsys.readouterr().err
    assert str(empty) in err and "cannot identify image file" in err
    assert "manifest" not in err.lower()
    with open(out, newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["verdict"] == "unreadable" and "cannot identify image file" in row["error"]


def test_test_cli_tests_every_format_in_real_and_fake_folders(
    head: Path,
    detector: Detector,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Reference: P(fake) of torchvision's test view of the arrays written here, per file in
    predictions.csv; the corrupt file is left out, named with Pillow's message."""
    monkeypatch.setenv("RFD_CACHE_DIR", str(tmp_path / "cache"))
    data = tmp_path / "data"
    expected = _user_folder(data / "fake")
    (data / "real").mkdir()
    real = {}
    gif, real["r1.gif"] = palette_image(50)
    gif.save(data / "real" / "r1.gif")
    for name, seed in (("r2.ppm", 51), ("r3.tga", 52)):
        real[name] = rgb_array(seed)
        Image.fromarray(real[name]).save(data / "real" / name)
    (data / "real" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(64)))
    argv = [
        "--ckpt", str(head), *HEAD_ARGS, *SIZE_ARGS,
        "--real_path", str(data / "real"), "--fake_path", str(data / "fake"),
        "--result_folder", str(tmp_path / "results"), "--name", "x",
    ]  # fmt: skip
    assert test_cli.main(argv) == 0
    err = capsys.readouterr().err
    folder = tmp_path / "results" / "x"
    with open(folder / "predictions.csv", newline="") as handle:
        predictions = {Path(r["path"]).name: r for r in csv.DictReader(handle)}
    assert set(predictions) == {*expected, *real}
    where = {**{n: data / "fake" / n for n in expected}, **{n: data / "real" / n for n in real}}
    probs = reference_probs(
        detector, {n: _pixels_of(where[n], p) for n, p in {**expected, **real}.items()}
    )
    for name, prob in probs.items():
        assert float(predictions[name]["prob_fake"]) == pytest.approx(prob, abs=1e-5), name
        assert int(predictions[name]["label"]) == (0 if name in real else 1)
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["summary"]["unreadable_images"] == 1
    assert {m["source"]: m["images"] for m in metrics["sources"]} == {
        "real-real": len(real),
        "fake": len(expected),
    }
    assert "broken.png" in err and pillow_error(data / "real" / "broken.png") in err
    assert str(data / "fake" / "notes.txt") in err
