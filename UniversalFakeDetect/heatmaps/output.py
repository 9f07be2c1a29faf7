"""The files of a heat map: an overlay PNG at the image's size and the raw map as ``.npy``.

The overlay blends the map, coloured (jet: blue low, red high), half and half with the image
inside the part the detector saw (the crop's box); outside it the image is shown darkened and
uncoloured. The ``.npy`` holds the map itself: float32 [height, width] in [0, 1], pixel for
pixel over the image, zero outside the box. Both are written atomically.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from rfd_common.files import atomic_path, atomic_write
from UniversalFakeDetect.heatmaps.placement import Box

OVERLAY_SUFFIX = ".png"
MAP_SUFFIX = ".npy"
OUTSIDE_BRIGHTNESS = 0.4  # how bright the pixels the detector did not see are shown


def overlay(image: Image.Image, heat: np.ndarray, box: Box, alpha: float = 0.5) -> Image.Image:
    """``image`` (RGB) with ``heat`` [height, width] in [0, 1] coloured over ``box``."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    if heat.shape != pixels.shape[:2]:
        raise ValueError(f"map of shape {heat.shape} for an image of {pixels.shape[:2]}")
    levels = np.rint(np.clip(heat, 0.0, 1.0) * 255).astype(np.uint8)
    colours = cv2.applyColorMap(levels, cv2.COLORMAP_JET)[..., ::-1].astype(np.float32)
    out = pixels * OUTSIDE_BRIGHTNESS
    left, top, right, bottom = box
    inside = (slice(top, bottom), slice(left, right))
    out[inside] = (1 - alpha) * pixels[inside] + alpha * colours[inside]
    return Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8), "RGB")


def heatmap_paths(stem: Path) -> tuple[Path, Path]:
    """The overlay and the map written for ``stem`` (a path without the suffixes)."""
    return stem.with_name(stem.name + OVERLAY_SUFFIX), stem.with_name(stem.name + MAP_SUFFIX)


def write_heatmap(stem: Path, image: Image.Image, heat: np.ndarray, box: Box) -> tuple[Path, Path]:
    """Write the overlay and the map of ``image`` beside ``stem``; returns their paths."""
    png, npy = heatmap_paths(stem)
    picture = overlay(image, heat, box)
    with atomic_path(png) as tmp:
        picture.save(tmp, format="PNG")
    atomic_write(npy, lambda handle: np.save(handle, heat.astype(np.float32)))
    return png, npy


def unique_name(name: str, used: set[str]) -> str:
    """``name``, or ``name-2``, ``name-3``... when already in ``used`` (compared in lower case,
    for file systems that ignore case); the name returned is added to ``used``."""
    candidate, count = name, 1
    while candidate.lower() in used:
        count += 1
        candidate = f"{name}-{count}"
    used.add(candidate.lower())
    return candidate
