"""Guess a generator family (gan, diffusion, autoregressive) from a source folder name."""

from __future__ import annotations

import re

_FAMILY_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("autoregressive", ("cogview", "dalle-mini", "dall-e-mini", "vqgan", "parti", "taming")),
    (
        "diffusion",
        (
            "sd",
            "stable",
            "diffusion",
            "ddpm",
            "ddim",
            "dpmsolver",
            "glide",
            "ldm",
            "midjourney",
            "dalle",
            "dall-e",
            "guided",
            "adm",
            "if",
            "deepfloyd",
            "wukong",
            "sdxl",
            "imagen",
        ),
    ),
    (
        "gan",
        (
            "gan",
            "stylegan",
            "progan",
            "biggan",
            "cyclegan",
            "gaugan",
            "stargan",
            "deepfake",
            "whichfaceisreal",
            "crn",
            "imle",
            "san",
            "seeingdark",
            "decoder",
        ),
    ),
)


def _tokens(name: str) -> list[str]:
    return [t for t in re.split(r"[^a-z0-9]+", name.lower()) if t]


def infer_family(source: str, label: int) -> str:
    """Family of a source: ``real`` for label 0, else a keyword match or ``unknown``."""
    if label == 0:
        return "real"
    tokens = _tokens(source)
    joined = "-".join(tokens)
    for family, keywords in _FAMILY_KEYWORDS:
        for keyword in keywords:
            if keyword in tokens or any(t.startswith(keyword) and len(keyword) > 3 for t in tokens):
                return family
            if "-" in keyword and keyword in joined:
                return family
    return "unknown"
