"""Decode an image file to a 2-D gray array, whatever its bit depth, colour or format."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from solar_defect.errors import BadImageError


def read_gray(path: Path) -> np.ndarray:
    """2-D uint8 or uint16 gray image; colour is converted with OpenCV's luma weights.

    `np.fromfile` + `cv2.imdecode` reads paths with spaces or non-ASCII letters on every OS.

    Raises:
        BadImageError: the file is missing, empty, truncated or not an image.
    """
    try:
        buffer = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise BadImageError(f"cannot read image {path}: {err.strerror}") from err
    image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED) if buffer.size else None
    if image is None:
        raise BadImageError(
            f"cannot decode image {path} ({buffer.size} bytes; empty, truncated or not an "
            "image): replace or remove it, or set data.on_bad_image=skip"
        )
    if image.ndim == 3:
        code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        image = cv2.cvtColor(image, code)
    if image.dtype not in (np.uint8, np.uint16):
        raise BadImageError(
            f"image {path} has pixel type {image.dtype}: convert it to 8- or 16-bit"
        )
    return image


def to_uint8(gray: np.ndarray) -> np.ndarray:
    """16-bit gray to 8-bit on the same 0-255 scale as the features (65535 -> 255)."""
    if gray.dtype == np.uint8:
        return gray
    return np.rint(gray / 257.0).astype(np.uint8)
