from __future__ import annotations

import pytest

from datagen.catalog import HUB_SOURCES
from datagen.families import generator_name, infer_family


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("IFv1-dpmsolver++-50-1M", "DeepFloyd IF"),
        ("if-ddim-50-15k", "DeepFloyd IF"),
        ("SDv15R-dpmsolver-25-1M", "Stable Diffusion v1.5"),
        ("sdv2-dpmsolver-25-10K", "Stable Diffusion v2"),
        ("sdv21-base", "Stable Diffusion v2.1"),
        ("stable-diffusion-xl", "Stable Diffusion XL"),
        ("stylegan3-t-metfaces-1024x1024", "StyleGAN3"),
        ("cogview2-22K", "CogView2"),
        ("midjourneyv5-5k", "Midjourney v5"),
        ("imagenet_ai_0419_biggan", "BigGAN"),
        ("dalle-mini", "DALL-E mini"),
        ("dalle2", "DALL-E 2"),
        ("deconv", None),
        ("sdss-survey", None),
    ],
)
def test_generator_names(source: str, name: str | None) -> None:
    assert generator_name(source) == name


def test_every_sentry_generator_has_a_name_and_a_family() -> None:
    for source in HUB_SOURCES:
        for leaf in source.leaf_names:
            assert generator_name(leaf) is not None, leaf
            assert infer_family(leaf, 1) == source.family, leaf
