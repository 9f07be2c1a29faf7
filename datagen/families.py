"""Guess a generator family (gan, diffusion, autoregressive) and name from a source folder name."""

from __future__ import annotations

import re
from collections.abc import Callable

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


def _version(prefix: str, sep: str = " v") -> Callable[[re.Match[str]], str]:
    """A namer that appends a version written as digits (``15`` -> ``1.5``) to ``prefix``."""

    def name(match: re.Match[str]) -> str:
        digits = (match.group("v") or "").replace(".", "")
        if not digits:
            return prefix
        return f"{prefix}{sep}{digits[0]}" + (f".{digits[1:]}" if len(digits) > 1 else "")

    return name


# Searched in order in the lower-cased source name; the first match names the generator.
_GENERATOR_NAMES: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    (re.compile(r"stylegan(?P<v>\d)?"), _version("StyleGAN", sep="")),
    (re.compile(r"progan"), "ProGAN"),
    (re.compile(r"biggan"), "BigGAN"),
    (re.compile(r"cyclegan"), "CycleGAN"),
    (re.compile(r"gaugan"), "GauGAN"),
    (re.compile(r"stargan"), "StarGAN"),
    (re.compile(r"(^|[^a-z])(deepfloyd|if(v\d+)?)([^a-z]|$)"), "DeepFloyd IF"),
    (re.compile(r"sdxl|stable.?diffusion.?xl"), "Stable Diffusion XL"),
    (re.compile(r"(^|[^a-z])sd(v?(?P<v>\d[\d.]?\d?))?([^a-z]|r|$)"), _version("Stable Diffusion")),
    (re.compile(r"stable.?diffusion"), "Stable Diffusion"),
    (re.compile(r"midjourney(v?(?P<v>\d))?"), _version("Midjourney")),
    (re.compile(r"cogview(?P<v>\d)?"), _version("CogView", sep="")),
    (re.compile(r"dall.?e.?mini"), "DALL-E mini"),
    (re.compile(r"dall.?e(.?(?P<v>\d))?"), _version("DALL-E", sep=" ")),
    (re.compile(r"glide"), "GLIDE"),
    (re.compile(r"wukong"), "Wukong"),
    (re.compile(r"vqdm"), "VQDM"),
    (re.compile(r"(^|[^a-z])ldm"), "Latent Diffusion"),
    (re.compile(r"(^|[^a-z])adm|guided"), "ADM (guided diffusion)"),
)


def generator_name(source: str) -> str | None:
    """A readable generator name for a source folder name (``SDv15R-...`` -> Stable Diffusion v1.5).

    ``None`` when the name matches no known generator.
    """
    lowered = source.lower()
    for pattern, name in _GENERATOR_NAMES:
        match = pattern.search(lowered)
        if match:
            return name if isinstance(name, str) else name(match)
    return None
