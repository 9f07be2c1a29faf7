"""The decoded-image cache and the views cut from it: the same pixels and the same tensors as
decoding every time (the PIL views of ``transforms``), bounded by its byte budget, failures
remembered, and batches of an :class:`ImageSource` equal to a DataLoader's."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Subset

from datagen.manifest import ManifestRow, read_manifest, select
from UniversalFakeDetect.data.augment import AugmentConfig
from UniversalFakeDetect.data.datasets import (
    DecodedImages,
    EpochTrainViews,
    ManifestImageDataset,
    UnreadableImageError,
    decoded_cache_note,
    eval_views,
    read_image,
)
from UniversalFakeDetect.data.transforms import TransformConfig, eval_view, train_view
from UniversalFakeDetect.engine.sources import ImageSource


def write_images(folder: Path, sizes: list[tuple[int, int]]) -> list[ManifestRow]:
    """Noise PNGs (lossless, so the decoded pixels are known) of ``sizes`` (width, height)."""
    rows = []
    for i, (width, height) in enumerate(sizes):
        pixels = np.random.default_rng(i).integers(0, 256, (height, width, 3), dtype=np.uint8)
        path = folder / f"img{i}.png"
        Image.fromarray(pixels).save(path)
        rows.append(ManifestRow(path=path.name, label=i % 2, source="noise", split="train"))
    return rows


SIZES = [(32, 32), (40, 32), (32, 45), (50, 50), (20, 24)]  # at load 32, above, below the crop


@pytest.fixture
def noise_rows(tmp_path: Path) -> list[ManifestRow]:
    return write_images(tmp_path, SIZES)


def test_cached_pixels_are_the_decoded_pixels(tiny_root: Path) -> None:
    rows = select(read_manifest(tiny_root), split="train")[:12]
    dataset = ManifestImageDataset(tiny_root, rows, eval_views(TransformConfig(32, 28)), 28)
    for index, row in enumerate(rows):
        first = dataset.pixels(index)
        expected = np.asarray(read_image(tiny_root / row.path))
        assert first.dtype == torch.uint8 and np.array_equal(first.numpy(), expected)
        assert dataset.pixels(index) is first  # decoded once
    assert len(dataset.decoded) == len(rows)
    assert "12 of 12" in decoded_cache_note(dataset)


@pytest.mark.parametrize("flip", [True, False])
@pytest.mark.parametrize("augmented", [False, True])
def test_train_views_from_the_cache_equal_the_pil_views(
    noise_rows: list[ManifestRow], tmp_path: Path, flip: bool, augmented: bool
) -> None:
    """Fast path (image at the load size, no augmentation) and fallback alike, over epochs."""
    transform = TransformConfig(load_size=32, crop_size=28, flip=flip)
    augmentation = AugmentConfig(blur_prob=0.5, jpg_prob=0.5) if augmented else None
    views = EpochTrainViews(transform, augmentation, seed=7)
    dataset = ManifestImageDataset(tmp_path, noise_rows, views, crop_size=28)
    for epoch in range(4):
        views.epoch = epoch
        for index, row in enumerate(noise_rows):
            image = read_image(tmp_path / row.path)
            rng = np.random.default_rng([7, epoch, index])
            expected = train_view(image, rng, transform, augmentation)
            tensor, label, item, ok = dataset[index]
            assert ok and item == index and label == row.label
            assert tensor.dtype == torch.float32 and torch.equal(tensor, expected)


@pytest.mark.parametrize("resize", [True, False])
def test_eval_views_from_the_cache_equal_the_pil_views(
    noise_rows: list[ManifestRow], tmp_path: Path, resize: bool
) -> None:
    """Including images smaller than the crop (zero padding) and off the load size."""
    transform = TransformConfig(load_size=32, crop_size=28, resize=resize)
    dataset = ManifestImageDataset(tmp_path, noise_rows, eval_views(transform), crop_size=28)
    for _ in range(2):  # decoded, then cached
        for index, row in enumerate(noise_rows):
            expected = eval_view(read_image(tmp_path / row.path), transform)
            assert torch.equal(dataset[index][0], expected)


def test_the_fast_paths_are_taken_where_they_apply(noise_rows: list[ManifestRow]) -> None:
    transform = TransformConfig(load_size=32, crop_size=28)
    square = torch.zeros(32, 32, 3, dtype=torch.uint8)
    larger = torch.zeros(40, 40, 3, dtype=torch.uint8)
    assert EpochTrainViews(transform, None, 0).from_pixels(square, 0) is not None
    assert EpochTrainViews(transform, None, 0).from_pixels(larger, 0) is None  # resize
    blur = AugmentConfig(blur_prob=0.1)
    assert EpochTrainViews(transform, blur, 0).from_pixels(square, 0) is None
    assert EpochTrainViews(transform, AugmentConfig(), 0).from_pixels(square, 0) is not None
    assert eval_views(transform).from_pixels(square, 0) is not None
    assert eval_views(transform).from_pixels(larger, 0) is None


def test_the_budget_bounds_the_cache_and_changes_no_pixel(
    noise_rows: list[ManifestRow], tmp_path: Path
) -> None:
    transform = TransformConfig(load_size=32, crop_size=28)
    first_two = 32 * 32 * 3 + 40 * 32 * 3 + 2 * 200  # the pixels of images 0 and 1
    small = ManifestImageDataset(
        tmp_path, noise_rows, eval_views(transform), 28, cache_bytes=first_two
    )
    none = ManifestImageDataset(tmp_path, noise_rows, eval_views(transform), 28, cache_bytes=0)
    full = ManifestImageDataset(tmp_path, noise_rows, eval_views(transform), 28)
    for _ in range(2):
        for index in range(len(noise_rows)):
            assert torch.equal(small[index][0], full[index][0])
            assert torch.equal(none[index][0], full[index][0])
    assert len(small.decoded) == 2 and small.decoded.used_bytes <= first_two
    assert small.decoded.full and len(none.decoded) == 0
    assert len(full.decoded) == len(noise_rows)
    with pytest.raises(ValueError):
        DecodedImages(-1)


def test_an_unreadable_image_is_read_once_and_stays_unreadable(
    noise_rows: list[ManifestRow], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / noise_rows[1].path).write_bytes(b"not an image")
    transform = TransformConfig(load_size=32, crop_size=28)
    dataset = ManifestImageDataset(tmp_path, noise_rows, eval_views(transform), 28)
    tensor, _, _, ok = dataset[1]
    assert not ok and tensor.shape == (3, 28, 28) and not tensor.any()
    from UniversalFakeDetect.data import datasets

    def no_second_read(path: Path) -> Image.Image:
        raise AssertionError(f"{path} decoded again")

    monkeypatch.setattr(datasets, "read_image", no_second_read)
    assert not dataset[1][3]
    strict = ManifestImageDataset(tmp_path, noise_rows, eval_views(transform), 28, strict=True)
    strict.decoded = dataset.decoded
    with pytest.raises(UnreadableImageError, match="cannot read image"):
        strict[1]


def test_a_pickled_dataset_leaves_its_pixels_behind(
    noise_rows: list[ManifestRow], tmp_path: Path
) -> None:
    dataset = ManifestImageDataset(
        tmp_path, noise_rows, eval_views(TransformConfig(32, 28)), 28, cache_bytes=10**6
    )
    expected = [dataset[i][0] for i in range(len(noise_rows))]
    copy = pickle.loads(pickle.dumps(dataset))
    assert len(copy.decoded) == 0 and copy.decoded.budget_bytes == 10**6
    assert all(torch.equal(copy[i][0], expected[i]) for i in range(len(noise_rows)))


def test_image_source_batches_equal_a_dataloaders(
    noise_rows: list[ManifestRow], tmp_path: Path
) -> None:
    """Batches assembled without workers: the DataLoader's tensors, unreadable items dropped
    and remembered, in the channels-last layout."""
    (tmp_path / noise_rows[3].path).write_bytes(b"broken")
    transform = TransformConfig(load_size=32, crop_size=28)
    views = EpochTrainViews(transform, None, seed=1)
    source = ImageSource(ManifestImageDataset(tmp_path, noise_rows, views, 28), "cpu")
    reference = ManifestImageDataset(tmp_path, noise_rows, EpochTrainViews(transform, None, 1), 28)
    indices = np.arange(len(noise_rows))
    for epoch in range(2):
        batches = list(source.batches(indices, 2, epoch, shuffle_seed=5))
        reference.make_view.epoch = epoch  # type: ignore[attr-defined]
        order = np.random.default_rng([5, epoch]).permutation(indices)
        expected = list(DataLoader(Subset(reference, order.tolist()), batch_size=2))
        assert len(batches) == len(expected)
        for batch, (images, labels, index, ok) in zip(batches, expected, strict=True):
            assert torch.equal(batch.inputs, images[ok])
            assert torch.equal(batch.labels, labels[ok])
            assert np.array_equal(batch.indices, index[ok].numpy())
            assert batch.inputs.is_contiguous(memory_format=torch.channels_last)
    assert source.unreadable == {3}
