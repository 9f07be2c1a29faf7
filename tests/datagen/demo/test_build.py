"""datagen.demo.build: the embedded demo dataset's determinism, counts, format, fingerprints, and
nothing left by an interrupted generation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from datagen.demo import DemoConfig, generate_demo_dataset
from datagen.demo.decoders import FAKE_SOURCES
from datagen.demo.photos import REAL_SOURCES
from datagen.manifest import FAKE, REAL, read_manifest, select
from tests.datagen.digest import tree_digest

SMALL = {"train_images": 40, "val_images": 56}


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    a = generate_demo_dataset(tmp_path / "a", DemoConfig(seed=3, **SMALL), progress=False)
    b = generate_demo_dataset(tmp_path / "b", DemoConfig(seed=3, **SMALL), progress=False)
    digest_a, digest_b = tree_digest(a), tree_digest(b)
    assert len(digest_a) == SMALL["train_images"] + SMALL["val_images"] + 2
    assert digest_a == digest_b


def test_identical_bytes_with_one_thread_in_another_process(tmp_path: Path) -> None:
    here = generate_demo_dataset(tmp_path / "here", DemoConfig(seed=5, **SMALL), progress=False)
    code = (
        "import torch; torch.set_num_threads(1);"
        "from datagen.demo import DemoConfig, generate_demo_dataset;"
        f"generate_demo_dataset({str(tmp_path / 'there')!r}, DemoConfig(seed=5, "
        f"train_images={SMALL['train_images']}, val_images={SMALL['val_images']}), progress=False)"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    assert tree_digest(here) == tree_digest(tmp_path / "there")


def test_different_seed_gives_different_images(tmp_path: Path) -> None:
    a = tree_digest(generate_demo_dataset(tmp_path / "a", DemoConfig(seed=1, **SMALL), False))
    b = tree_digest(generate_demo_dataset(tmp_path / "b", DemoConfig(seed=2, **SMALL), False))
    images = [k for k in a if k.endswith(".jpg")]
    assert sorted(images) == sorted(k for k in b if k.endswith(".jpg"))
    differing = sum(a[k] != b[k] for k in images)
    assert differing == len(images)


def test_counts_balance_and_val_only_sources(demo_root: Path) -> None:
    rows = read_manifest(demo_root)
    config = DemoConfig()
    train, val = select(rows, split="train"), select(rows, split="val")
    assert len(train) == config.train_images >= 2000
    assert len(val) == config.val_images
    for split_rows in (train, val):
        labels = Counter(r.label for r in split_rows)
        assert labels[REAL] == labels[FAKE] == len(split_rows) // 2

    train_fakes = {r.source for r in train if r.label == FAKE}
    val_fakes = {r.source for r in val if r.label == FAKE}
    assert len(val_fakes) >= 4 and len(val_fakes - train_fakes) >= 2
    assert val_fakes == {g.name for g in FAKE_SOURCES}
    train_reals = {r.source for r in train if r.label == REAL}
    val_reals = {r.source for r in val if r.label == REAL}
    assert len(val_reals - train_reals) >= 1
    assert val_reals == {s.name for s in REAL_SOURCES}
    assert {r.family for r in rows} == {"real", "gan"}
    assert all(r.path.startswith(f"ImageData/{r.split}/{r.source}/") for r in rows)


def test_every_image_is_an_rgb_jpeg_of_the_documented_size(demo_root: Path) -> None:
    info = json.loads((demo_root / "dataset.json").read_text())
    size = info["preprocessing"]["size"]
    assert size == DemoConfig().size == info["config"]["size"]
    for row in read_manifest(demo_root):
        with Image.open(demo_root / row.path) as image:
            assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (size, size))


def test_one_preprocessing_for_reals_and_fakes(demo_root: Path) -> None:
    """Reals and fakes carry identical JPEG quantisation tables (same encoder settings)."""
    rows = read_manifest(demo_root)
    tables = set()
    for label in (REAL, FAKE):
        for row in select(rows, label=label)[::200]:
            with Image.open(demo_root / row.path) as image:
                tables.add(repr(image.quantization))
    assert len(tables) == 1
    info = json.loads((demo_root / "dataset.json").read_text())
    assert {"resize", "resample", "jpeg_quality", "subsampling"} <= set(info["preprocessing"])


def tail_energy_ratio(gray: np.ndarray) -> float:
    """log(energy at radius > 0.75 Nyquist / energy in 0.25..0.5 Nyquist) of the 2-D spectrum."""
    power = np.abs(np.fft.fftshift(np.fft.fft2(gray - gray.mean()))) ** 2
    n = gray.shape[0]
    y, x = np.mgrid[:n, :n] - n // 2
    radius = np.hypot(x, y) / (n / 2)
    tail = power[radius > 0.75].sum() + 1e-6
    middle = power[(radius >= 0.25) & (radius < 0.5)].sum() + 1e-6
    return float(np.log(tail / middle))


@pytest.mark.parametrize("split", ["train", "val"])
def test_each_generator_leaves_a_measurable_fingerprint(demo_root: Path, split: str) -> None:
    """A fixed spectral statistic separates every generator from the same split's reals."""
    rows = select(read_manifest(demo_root), split=split)

    def statistic(row_subset: list) -> list[float]:
        values = []
        for row in row_subset[::2]:
            with Image.open(demo_root / row.path) as image:
                values.append(tail_energy_ratio(np.asarray(image.convert("L"), np.float64)))
        return values

    reals = statistic(select(rows, label=REAL))
    generators = sorted({r.source for r in rows if r.label == FAKE})
    assert generators
    for generator in generators:
        fakes = statistic(select(rows, sources=[generator]))
        auc = roc_auc_score([0] * len(reals) + [1] * len(fakes), reals + fakes)
        assert auc > 0.75, f"{generator} ({split}): AUC {auc:.3f}"


def test_interrupted_generation_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    from datagen.demo import build

    def fail(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(build, "write_manifest", fail)
    with pytest.raises(RuntimeError):
        generate_demo_dataset(tmp_path / "demo", DemoConfig(**SMALL), progress=False)
    assert list(tmp_path.iterdir()) == []
