"""A crop's map put back on the original image.

The test view (``data.transforms.eval_view``) resizes the shorter side to ``load_size``
(torchvision's rule: the longer side in proportion, rounded down; skipped with ``--no_resize``)
and takes the centred ``crop_size`` square (zero-padded where the image is smaller). The map
of the crop is pasted at that square's place on a canvas of the resized image's size, zero
outside it (the detector never saw those pixels), and the canvas is resized to the original
size: every map pixel then lies over the image pixel it describes.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from UniversalFakeDetect.data.transforms import TransformConfig

Box = tuple[int, int, int, int]  # left, top, right, bottom (exclusive), in image pixels


def resized_size(width: int, height: int, transform: TransformConfig) -> tuple[int, int]:
    """(width, height) of the image after the test view's resize of its shorter side."""
    if not transform.resize or min(width, height) == transform.load_size:
        return width, height
    short, long = min(width, height), max(width, height)
    new_long = int(transform.load_size * long / short)
    if width <= height:
        return transform.load_size, new_long
    return new_long, transform.load_size


def crop_offset(size: int, crop: int) -> int:
    """Where the centre crop starts along one side of ``size`` pixels (negative: the side is
    zero-padded first, as torchvision's ``center_crop``)."""
    if crop > size:
        return -((crop - size) // 2)
    return round((size - crop) / 2.0)  # half to even, as torchvision


def _window(width: int, height: int, transform: TransformConfig) -> tuple[int, int, int, int]:
    """The resized size and the crop's offset in it: (resized w, resized h, left, top)."""
    rw, rh = resized_size(width, height, transform)
    crop = transform.crop_size
    return rw, rh, crop_offset(rw, crop), crop_offset(rh, crop)


def crop_box(width: int, height: int, transform: TransformConfig) -> Box:
    """The part of the original image that the crop shows (padding excluded)."""
    rw, rh, left, top = _window(width, height, transform)
    crop = transform.crop_size
    sx, sy = width / rw, height / rh
    return (
        math.floor(max(left, 0) * sx),
        math.floor(max(top, 0) * sy),
        math.ceil(min(left + crop, rw) * sx),
        math.ceil(min(top + crop, rh) * sy),
    )


def place_on_image(
    crop_map: np.ndarray, width: int, height: int, transform: TransformConfig
) -> np.ndarray:
    """``crop_map`` [crop, crop] as a map [height, width] of the original image, in [0, 1]."""
    crop = transform.crop_size
    if crop_map.shape != (crop, crop):
        raise ValueError(f"map of shape {crop_map.shape}, expected ({crop}, {crop})")
    rw, rh, left, top = _window(width, height, transform)
    canvas = np.zeros((rh, rw), np.float32)
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + crop, rw), min(top + crop, rh)
    canvas[y0:y1, x0:x1] = crop_map[y0 - top : y1 - top, x0 - left : x1 - left]
    if (rw, rh) != (width, height):
        shrink = rw * rh > width * height
        interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        canvas = cv2.resize(canvas, (width, height), interpolation=interpolation)
    return np.clip(canvas, 0.0, 1.0)
