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
            "vqdm",
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


# Words that start like a generator keyword but name something else (``imagenet`` is a data
# set: GenImage's ``imagenet_ai_0419_biggan`` is a GAN, not Imagen; ``partial`` is not Parti).
_NOT_GENERATORS = frozenset({"imagenet", "partial", "party", "participants", "particle"})
# A short keyword followed by a version: ``sdv4``, ``sd2``, ``sdv15r``.
_VERSION_SUFFIX = re.compile(r"v?\d[a-z0-9]*")


def _tokens(name: str) -> list[str]:
    return [t for t in re.split(r"[^a-z0-9]+", name.lower()) if t and t not in _NOT_GENERATORS]


def _matches(keyword: str, token: str) -> bool:
    """``token`` is ``keyword``, starts with a long keyword, or is a short keyword + version."""
    if token == keyword:
        return True
    if not token.startswith(keyword):
        return False
    return len(keyword) > 3 or _VERSION_SUFFIX.fullmatch(token[len(keyword) :]) is not None


def infer_family(source: str, label: int) -> str:
    """Family of a source: ``real`` for label 0, else a keyword match or ``unknown``."""
    if label == 0:
        return "real"
    tokens = _tokens(source)
    joined = "-".join(tokens)
    for family, keywords in _FAMILY_KEYWORDS:
        for keyword in keywords:
            if any(_matches(keyword, t) for t in tokens):
                return family
            if "-" in keyword and keyword in joined:
                return family
    return "unknown"
