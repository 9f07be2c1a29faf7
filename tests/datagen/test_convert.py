"""The one conversion: real and fake images come out with identical settings."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps, JpegImagePlugin

from datagen.convert import ConversionPool, Result, Task, UnreadableImageError, convert_bytes
from datagen.preprocess import Preprocessing

PREP = Preprocessing()


def encoded(pixels: np.ndarray, fmt: str, **save: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt, **save)
    return buffer.getvalue()


def photo(seed: int, size: tuple[int, int]) -> np.ndarray:
    """Smooth content plus noise: something between a photo and a generated image."""
    rng = np.random.default_rng(seed)
    h, w = size
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([(x * 255) // w, (y * 255) // h, ((x + y) * 127) // (w + h)], -1)
    return np.clip(base + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)


def jpeg_settings(data: bytes) -> tuple[tuple[int, int], dict, int, str]:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG"
        return (
            image.size,
            {k: list(v) for k, v in image.quantization.items()},
            JpegImagePlugin.get_sampling(image),
            image.mode,
        )


@pytest.mark.parametrize("size", [(512, 512), (300, 400)])
def test_real_and_fake_sources_get_identical_encoder_settings(size: tuple[int, int]) -> None:
    # A "real" arrives as a camera JPEG (q95, 4:4:4), a "fake" as a generator PNG.
    real = encoded(photo(1, size), "JPEG", quality=95, subsampling=0)
    fake = encoded(photo(2, size), "PNG")
    gray = encoded(photo(3, size)[..., 0], "JPEG", quality=80)
    out_real, out_fake = convert_bytes(real, PREP), convert_bytes(fake, PREP)
    settings_real, settings_fake = jpeg_settings(out_real), jpeg_settings(out_fake)
    assert settings_real == settings_fake == jpeg_settings(convert_bytes(gray, PREP))
    assert settings_real[0] == (256, 256) and settings_real[2] == 2  # 4:2:0
    assert settings_real[3] == "RGB"
    # ... and they are exactly what the recorded preprocessing says (q90 tables).
    reference = PREP.encode(Image.new("RGB", (256, 256)))
    assert jpeg_settings(reference)[1] == settings_real[1]


def test_conversion_is_the_existing_preprocessing_and_deterministic() -> None:
    data = encoded(photo(3, (320, 480)), "PNG")
    with Image.open(io.BytesIO(data)) as image:
        expected = PREP.convert(image)
    assert convert_bytes(data, PREP) == expected == convert_bytes(data, PREP)


def test_exif_orientation_is_applied_before_cropping() -> None:
    pixels = np.zeros((32, 64, 3), np.uint8)
    pixels[:, :32] = (255, 0, 0)  # left half red, right half blue
    pixels[:, 32:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    plain = encoded(pixels, "JPEG", quality=95)
    rotated = encoded(pixels, "JPEG", quality=95, exif=exif.tobytes())
    prep = Preprocessing(size=32)
    with Image.open(io.BytesIO(convert_bytes(plain, prep))) as a:
        left_right = np.asarray(a)
    with Image.open(io.BytesIO(convert_bytes(rotated, prep))) as b:
        top_bottom = np.asarray(b)
    assert left_right[16, 4, 0] > 200 and left_right[16, 28, 2] > 200  # red | blue
    assert top_bottom[4, 16, 0] > 200 and top_bottom[28, 16, 2] > 200  # red over blue


def test_unreadable_bytes_raise_a_clear_error() -> None:
    with pytest.raises(UnreadableImageError):
        convert_bytes(b"not an image", PREP)
    truncated = encoded(photo(4, (200, 200)), "PNG")[:300]
    with pytest.raises(UnreadableImageError):
        convert_bytes(truncated, PREP)


def test_pool_writes_the_same_files_as_one_process(tmp_path: Path) -> None:
    sources = [encoded(photo(i, (96 + 8 * i, 128)), "PNG") for i in range(6)]
    sources.append(b"broken")
    outputs: dict[int, dict[str, bytes]] = {}
    for workers in (1, 2):
        results: list[Result] = []
        with ConversionPool(PREP, workers, on_result=results.append, max_in_flight=2) as pool:
            for i, data in enumerate(sources):
                pool.submit(Task(data, str(tmp_path / f"w{workers}" / f"{i}.jpg"), key=i))
        assert sorted(r.key for r in results if r.ok) == list(range(6))  # type: ignore[type-var]
        (failed,) = [r for r in results if not r.ok]
        assert failed.key == 6 and failed.error
        folder = tmp_path / f"w{workers}"
        outputs[workers] = {p.name: p.read_bytes() for p in folder.iterdir()}
        assert sorted(outputs[workers]) == [f"{i}.jpg" for i in range(6)]  # no temporaries
    assert outputs[1] == outputs[2]


PILLOW_FILTERS = {"lanczos": Image.Resampling.LANCZOS, "bicubic": Image.Resampling.BICUBIC}


def reference_pixels(data: bytes, prep: Preprocessing) -> Image.Image:
    """The resized image of the conversion as first written (every step a copy, Pillow alone)."""
    with Image.open(io.BytesIO(data)) as opened:
        opened.load()
        image = ImageOps.exif_transpose(opened).convert("RGB")
    if prep.resize == "center_crop":
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        image = image.crop((left, top, left + side, top + side))
    if image.size != (prep.size, prep.size):
        image = image.resize((prep.size, prep.size), PILLOW_FILTERS[prep.resample])
    return image


def reference_conversion(data: bytes, prep: Preprocessing) -> bytes:
    """The JPEG of :func:`reference_pixels`."""
    buffer = io.BytesIO()
    reference_pixels(data, prep).convert("RGB").save(
        buffer, format="JPEG", quality=prep.jpeg_quality, subsampling=2, optimize=False
    )
    return buffer.getvalue()


def test_the_faster_conversion_gives_the_same_bytes() -> None:
    rotated = Image.Exif()
    rotated[0x0112] = 8
    pixels = photo(5, (300, 420))
    sources = [
        encoded(photo(1, (1024, 1024)), "PNG"),  # StyleGAN3-like: square, no crop
        encoded(pixels, "PNG"),
        encoded(pixels, "JPEG", quality=92),
        encoded(pixels, "JPEG", quality=92, exif=rotated.tobytes()),
        encoded(np.dstack([pixels, pixels[..., :1]]), "PNG"),  # RGBA
        encoded(pixels[..., 0], "PNG"),  # L
        encoded(photo(6, (256, 256)), "PNG"),  # FFHQ-like: already the target size
    ]
    palette = io.BytesIO()
    Image.fromarray(pixels).quantize(64).save(palette, format="PNG")
    sources.append(palette.getvalue())
    for resize in ("center_crop", "stretch"):
        # Lanczos is Pillow's alone: the very bytes of the first conversion.
        exact = Preprocessing(resize=resize, resample="lanczos")
        # The default bicubic reduces squares with torch's kernel, Pillow's filter to one grey
        # level (see test_resampling), before the JPEG encoder.
        default = Preprocessing(resize=resize)
        assert default.resample == "bicubic"
        for i, data in enumerate(sources):
            assert convert_bytes(data, exact) == reference_conversion(data, exact), (resize, i)
            with Image.open(io.BytesIO(data)) as opened:
                opened.load()
                upright = ImageOps.exif_transpose(opened)
            ours = np.asarray(default.resize_image(upright), dtype=np.int16)
            reference = np.asarray(reference_pixels(data, default), dtype=np.int16)
            difference = np.abs(ours - reference)
            assert difference.max() <= 1 and (difference > 0).mean() < 0.01, (resize, i)


@pytest.mark.parametrize(("subsampling", "sampling"), [("4:2:0", 2), ("4:4:4", 0)])
def test_the_subsampling_setting_is_what_the_file_has(subsampling: str, sampling: int) -> None:
    data = encoded(photo(7, (300, 300)), "PNG")
    out = convert_bytes(data, Preprocessing(subsampling=subsampling))
    with Image.open(io.BytesIO(out)) as image:
        assert JpegImagePlugin.get_sampling(image) == sampling
