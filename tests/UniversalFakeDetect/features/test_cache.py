"""The feature cache: same logits as the backbone, rebuilt on key change, resumable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from datagen.manifest import read_manifest
from tests.UniversalFakeDetect.conftest import frozen_detector
from UniversalFakeDetect.data.augment import AugmentConfig
from UniversalFakeDetect.data.transforms import TransformConfig, eval_view, load_rgb
from UniversalFakeDetect.features import cache as cache_module
from UniversalFakeDetect.features.extract import cached_features

TRANSFORM = TransformConfig(load_size=32, crop_size=28)


def test_cached_and_uncached_features_give_the_same_logits(tiny_root: Path, tmp_path: Path):
    rows = read_manifest(tiny_root)[:20]
    detector = frozen_detector()
    with torch.no_grad():
        detector.fc.weight.normal_()
    cache = cached_features(detector, tiny_root, rows, TRANSFORM, tmp_path, "cpu", batch_size=8)
    images = torch.stack([eval_view(load_rgb(str(tiny_root / r.path)), TRANSFORM) for r in rows])
    with torch.no_grad():
        direct = detector(images)
        from_cache = detector.head(torch.from_numpy(cache.view(0)))
    assert torch.allclose(direct, from_cache, rtol=0, atol=1e-5)
    assert cache.complete


def test_cache_entry_changes_with_preprocessing_arch_or_views(tiny_root: Path, tmp_path: Path):
    rows = read_manifest(tiny_root)[:6]
    detector = frozen_detector()
    first = cached_features(detector, tiny_root, rows, TRANSFORM, tmp_path, "cpu")
    same = cached_features(detector, tiny_root, rows, TRANSFORM, tmp_path, "cpu")
    other_size = TransformConfig(load_size=32, crop_size=24)
    resized = cached_features(detector, tiny_root, rows, other_size, tmp_path, "cpu")
    views = cached_features(
        detector, tiny_root, rows, TRANSFORM, tmp_path, "cpu", AugmentConfig(), extra_views=2
    )
    other_weights = cached_features(frozen_detector(5), tiny_root, rows, TRANSFORM, tmp_path, "cpu")
    same_weights = cached_features(frozen_detector(0), tiny_root, rows, TRANSFORM, tmp_path, "cpu")
    assert first.folder == same.folder == same_weights.folder
    folders = {first.folder, resized.folder, views.folder, other_weights.folder}
    assert len(folders) == 4
    assert not np.allclose(first.view(0), other_weights.view(0))
    assert views.shape == (3, 6, 512)
    assert not np.allclose(first.view(0), resized.view(0))


def test_interrupted_cache_resumes_and_matches(
    tiny_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = read_manifest(tiny_root)[:24]
    detector = frozen_detector()
    complete = cached_features(detector, tiny_root, rows, TRANSFORM, tmp_path / "a", "cpu")

    real_fill = cache_module.fill_cache
    calls = {"images": 0}

    def killed_after_two_flushes(cache, extract, load, **kwargs):
        def counting_extract(images):
            calls["images"] += len(images)
            if calls["images"] > 16:
                raise KeyboardInterrupt
            return extract(images)

        return real_fill(cache, counting_extract, load, **{**kwargs, "flush_every": 1})

    from UniversalFakeDetect.features import extract as extract_module

    monkeypatch.setattr(extract_module, "fill_cache", killed_after_two_flushes)
    with pytest.raises(KeyboardInterrupt):
        cached_features(detector, tiny_root, rows, TRANSFORM, tmp_path / "b", "cpu", batch_size=4)
    monkeypatch.setattr(extract_module, "fill_cache", real_fill)
    partial = cache_module.FeatureCache(complete.folder, [r.path for r in rows], 1, 512)
    partial.folder = next((tmp_path / "b").iterdir())
    assert 0 < partial.done().sum() < len(rows)

    computed = {"images": 0}

    def counting(cache, extract, load, **kwargs):
        def count(images):
            computed["images"] += len(images)
            return extract(images)

        return real_fill(cache, count, load, **kwargs)

    monkeypatch.setattr(extract_module, "fill_cache", counting)
    resumed = cached_features(detector, tiny_root, rows, TRANSFORM, tmp_path / "b", "cpu")
    assert computed["images"] == len(rows) - 16
    assert np.allclose(resumed.view(0), complete.view(0), atol=1e-3)


def test_unreadable_image_gets_nan_features_or_stops_with_strict(tiny_root: Path, tmp_path: Path):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(tiny_root, root)
    rows = read_manifest(root)[:5]
    data = (root / rows[2].path).read_bytes()
    (root / rows[2].path).write_bytes(data[: len(data) // 2])  # truncated JPEG
    detector = frozen_detector()
    cache = cached_features(detector, root, rows, TRANSFORM, tmp_path / "c", "cpu")
    bad = ~np.isfinite(cache.view(0)).all(axis=1)
    assert bad.tolist() == [False, False, True, False, False]
    from rfd_common.errors import UserError

    with pytest.raises(UserError, match=rows[2].path):
        cached_features(detector, root, rows, TRANSFORM, tmp_path / "d", "cpu", strict=True)
