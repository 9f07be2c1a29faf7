"""benchmarks/bench_extraction.py on a tiny demo dataset (four images, ResNet-18 with random
weights): one line per network, and the printed ratio is the quotient of the printed rates."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from datagen.demo import DemoConfig, generate_demo_dataset
from tests.benchmarks.scripts import NUMBER, assert_quotient, load

IMAGES, ARCH = 4, "Imagenet:resnet18"


def test_tiny_run_prints_consistent_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = DemoConfig(size=32, train_images=8, val_images=8)
    root = generate_demo_dataset(tmp_path / "demo", config, progress=False)
    bench = load("bench_extraction")
    argv = ["--root", str(root), "--archs", ARCH, "--images", str(IMAGES), "--batch_size", "2"]
    bench.main(argv)
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(rf"torch threads: \d+, {IMAGES} images, 224 px", lines[0]), lines[0]
    found = re.fullmatch(
        rf"{ARCH} +backbone alone +({NUMBER}) img/s \| whole pipeline from JPEG +({NUMBER}) "
        rf"img/s \| ratio +({NUMBER}) \| second pass from cache {NUMBER} ms",
        lines[1],
    )
    assert found, lines[1]
    backbone, pipeline, ratio = found.groups()
    assert_quotient(ratio, backbone, pipeline)
    assert len(lines) == 2
