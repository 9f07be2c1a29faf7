"""Generate the embedded demo dataset: packaged photos as reals, small decoders as fakes.

Deterministic: every image draws its randomness from ``(seed, split, source, index)``, so the
same seed gives byte-identical images, manifest and ``dataset.json``. The dataset is written
into a temporary folder beside ``out`` and renamed into place when complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from datagen.demo.decoders import FAKE_SOURCES, GeneratorSpec, build_decoder
from datagen.demo.photos import REAL_SOURCES, PhotoSource, load_photo, random_crop, split_region
from datagen.manifest import FAKE, MANIFEST_NAME, REAL, ManifestRow, write_manifest
from datagen.preprocess import Preprocessing
from rfd_common.errors import UserError
from rfd_common.files import atomic_write_json

DEMO_VERSION = 1
DATASET_INFO_NAME = "dataset.json"
_SPLIT_IDS = {"train": 0, "val": 1}
_BATCH = 64


@dataclass(frozen=True)
class DemoConfig:
    """What to generate. Image counts are per split and balanced real/fake."""

    seed: int = 0
    size: int = 64
    train_images: int = 2400
    val_images: int = 1200
    min_crop_factor: float = 0.5  # crop sides are log-uniform in size * [min, max] factor:
    max_crop_factor: float = 4.0  # reals are mostly shrunk, some enlarged (blurry, like fakes)

    def __post_init__(self) -> None:
        if self.size < 16 or self.size % 4:
            raise UserError(f"--size {self.size}: must be a multiple of 4, at least 16")
        for flag, count in (
            ("--train_images", self.train_images),
            ("--val_images", self.val_images),
        ):
            if count < 8 or count % 2:
                raise UserError(f"{flag} {count}: must be an even number, at least 8")


def _crop_range(config: DemoConfig) -> tuple[int, int]:
    return round(config.size * config.min_crop_factor), round(config.size * config.max_crop_factor)


def _rng(seed: int, split: str, source_index: int, image_index: int) -> np.random.Generator:
    return np.random.default_rng([seed, _SPLIT_IDS[split], source_index, image_index])


def _counts(total: int, n_sources: int) -> list[int]:
    """Split ``total`` as evenly as possible over ``n_sources``."""
    base, extra = divmod(total, n_sources)
    return [base + (1 if i < extra else 0) for i in range(n_sources)]


def _draw_fake_photo(rng: np.random.Generator) -> tuple[str, str]:
    """(package, file) of the photo a fake is decoded from.

    Drawn as the training reals are (a real source present in train, then one of its photos),
    so every photo contributes as many fakes as reals and content alone says nothing.
    """
    sources = [s for s in REAL_SOURCES if "train" in s.splits]
    source = sources[int(rng.integers(len(sources)))]
    return source.package, source.files[int(rng.integers(len(source.files)))]


def _real_images(
    source: PhotoSource, source_index: int, split: str, count: int, config: DemoConfig
) -> list[Image.Image]:
    prep = _preprocessing(config)
    images = []
    for i in range(count):
        rng = _rng(config.seed, split, source_index, i)
        file = source.files[int(rng.integers(len(source.files)))]
        region = split_region(load_photo(source.package, file), split)
        crop = random_crop(region, rng, *_crop_range(config))
        images.append(prep.resize_image(crop))
    return images


def _fake_images(
    spec: GeneratorSpec, source_index: int, split: str, count: int, config: DemoConfig
) -> list[Image.Image]:
    decoder = build_decoder(spec)
    low = config.size // decoder.factor
    resample = Image.Resampling.LANCZOS
    lows = []
    for i in range(count):
        rng = _rng(config.seed, split, source_index, i)
        package, file = _draw_fake_photo(rng)
        region = split_region(load_photo(package, file), split)
        crop = random_crop(region, rng, *_crop_range(config))
        lows.append(np.asarray(crop.resize((low, low), resample), dtype=np.float64) / 255.0)
    images = []
    for start in range(0, count, _BATCH):
        batch = torch.from_numpy(np.stack(lows[start : start + _BATCH])).permute(0, 3, 1, 2)
        noise = torch.Generator().manual_seed(
            config.seed * 1_000_003 + _SPLIT_IDS[split] * 10_007 + source_index * 101 + start
        )
        out = decoder(batch, noise)
        pixels = (out.permute(0, 2, 3, 1).numpy() * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
        images.extend(Image.fromarray(p) for p in pixels)
    return images


def _preprocessing(config: DemoConfig) -> Preprocessing:
    return Preprocessing(size=config.size, resize="center_crop", resample="lanczos")


def _plan(config: DemoConfig) -> list[tuple[str, int, int, PhotoSource | GeneratorSpec, int]]:
    """(split, label, source index, source, count) for every source of every split."""
    plan = []
    for split, total in (("train", config.train_images), ("val", config.val_images)):
        reals = [(i, s) for i, s in enumerate(REAL_SOURCES) if split in s.splits]
        fakes = [(i, s) for i, s in enumerate(FAKE_SOURCES) if split in s.splits]
        for (i, s), n in zip(reals, _counts(total // 2, len(reals)), strict=True):
            plan.append((split, REAL, i, s, n))
        for (i, s), n in zip(fakes, _counts(total // 2, len(fakes)), strict=True):
            plan.append((split, FAKE, len(REAL_SOURCES) + i, s, n))
    return plan


def dataset_info(config: DemoConfig) -> dict:
    """The ``dataset.json`` of a demo dataset (no timestamps: deterministic)."""
    sources = []
    for split, label, _, source, count in _plan(config):
        entry = {"split": split, "source": source.name, "label": label, "images": count}
        if isinstance(source, PhotoSource):
            entry.update(family="real", photos=list(source.files), package=source.package)
        else:
            entry.update(
                family="gan",
                upsampler=source.upsampler,
                weight_seed=source.weight_seed,
                noise=source.noise,
            )
        sources.append(entry)
    return {
        "name": "demo",
        "demo_version": DEMO_VERSION,
        "config": asdict(config),
        "preprocessing": _preprocessing(config).to_dict(),
        "sources": sources,
        "notes": (
            "Reals: square crops of packaged photos (scikit-image, scikit-learn), train crops from "
            "the left 70% of each photo, val crops from the right 30%. Fakes: a crop shrunk by the "
            "decoder's factor, then decoded by a seeded random decoder. Every image is encoded "
            "by the same JPEG settings."
        ),
    }


def _prepare_out(out: Path) -> None:
    parent = out.resolve().parent
    if not parent.exists():
        raise UserError(f"--out {out}: parent folder {parent} does not exist; create it first")
    if not parent.is_dir():
        raise UserError(f"--out {out}: {parent} is not a folder")
    if not os.access(parent, os.W_OK):
        raise UserError(f"--out {out}: parent folder {parent} is not writable")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--out {out}: already exists and is not empty; choose a new folder")


def generate_demo_dataset(
    out: Path, config: DemoConfig | None = None, progress: bool = True
) -> Path:
    """Write the demo dataset to the new folder ``out``; returns ``out``.

    Nothing appears at ``out`` until the whole dataset is written.
    """
    config = config or DemoConfig()
    out = Path(out)
    _prepare_out(out)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.resolve().parent))
    except OSError as exc:
        raise UserError(f"--out {out}: cannot write there ({exc.strerror})") from exc
    try:
        prep = _preprocessing(config)
        rows = []
        plan = _plan(config)
        bar = tqdm(
            total=sum(p[4] for p in plan), desc="demo dataset", unit="img", disable=not progress
        )
        for split, label, source_index, source, count in plan:
            make = _real_images if label == REAL else _fake_images
            images = make(source, source_index, split, count, config)  # type: ignore[arg-type]
            folder = tmp / "ImageData" / split / source.name
            folder.mkdir(parents=True)
            family = "real" if label == REAL else "gan"
            for index, image in enumerate(images):
                relative = f"ImageData/{split}/{source.name}/{index:05d}.jpg"
                (tmp / relative).write_bytes(prep.encode(image))
                rows.append(ManifestRow(relative, label, source.name, split, family))
            bar.update(count)
        bar.close()
        write_manifest(rows, tmp / MANIFEST_NAME)
        atomic_write_json(tmp / DATASET_INFO_NAME, dataset_info(config))
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def is_complete(folder: Path, config: DemoConfig) -> bool:
    """True when ``folder`` holds a finished demo dataset generated with ``config``."""
    info = Path(folder) / DATASET_INFO_NAME
    if not info.is_file() or not (Path(folder) / MANIFEST_NAME).is_file():
        return False
    try:
        return json.loads(info.read_text()) == json.loads(
            json.dumps(dataset_info(config), sort_keys=True)
        )
    except json.JSONDecodeError:
        return False
