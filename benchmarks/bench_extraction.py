"""Feature extraction throughput: the backbone alone on preloaded tensors, and the whole
pipeline from JPEG files (decode, resize, crop, backbone) over the demo dataset.

    python benchmarks/bench_extraction.py [--archs Imagenet:resnet50 CLIP:RN50] [--images 64]
        [--root DATASET]   (a dataset root with a manifest.csv; default: the demo dataset)

Random weights (nothing to download); 224 px crops as in the paper's setting.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from datagen.demo import ensure_demo_dataset
from datagen.manifest import read_manifest
from UniversalFakeDetect.data.transforms import TransformConfig, eval_view, load_rgb
from UniversalFakeDetect.features.extract import cached_features
from UniversalFakeDetect.models.detector import Detector
from UniversalFakeDetect.models.registry import build_backbone


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--archs", nargs="+", default=["Imagenet:resnet50", "CLIP:RN50"])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--root", type=Path, help="dataset root (default: the demo dataset)")
    args = parser.parse_args(argv)
    root = args.root if args.root is not None else ensure_demo_dataset()
    rows = read_manifest(root)[: args.images]
    transform = TransformConfig(load_size=256, crop_size=224, flip=False)
    print(f"torch threads: {torch.get_num_threads()}, {len(rows)} images, 224 px")
    for arch in args.archs:
        torch.manual_seed(0)
        detector = Detector(build_backbone(arch, weights="none"), fix_backbone=True).eval()
        tensors = torch.stack([eval_view(load_rgb(str(root / r.path)), transform) for r in rows])
        with torch.no_grad():
            detector.features(tensors[:2])  # warm-up
            start = time.perf_counter()
            for i in range(0, len(tensors), args.batch_size):
                detector.features(tensors[i : i + args.batch_size])
            backbone_rate = len(tensors) / (time.perf_counter() - start)
        with tempfile.TemporaryDirectory() as cache_dir:
            start = time.perf_counter()
            cached_features(
                detector, root, rows, transform, Path(cache_dir), "cpu",
                batch_size=args.batch_size, desc=arch,
            )  # fmt: skip
            pipeline_rate = len(rows) / (time.perf_counter() - start)
            start = time.perf_counter()
            cached_features(detector, root, rows, transform, Path(cache_dir), "cpu")
            reuse = time.perf_counter() - start
        print(
            f"{arch:18s} backbone alone {backbone_rate:7.1f} img/s | whole pipeline from JPEG "
            f"{pipeline_rate:7.1f} img/s | ratio {backbone_rate / pipeline_rate:4.2f} | "
            f"second pass from cache {reuse * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
