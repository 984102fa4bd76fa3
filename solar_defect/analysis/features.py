"""Image features for the sensitivity analysis (design.md, "Sensitivity analysis").

Pure numpy/OpenCV so that a notebook can compute the same numbers as the training callback
on plain arrays. Every feature works on float64 gray on the 0-255 scale, so 8-bit and 16-bit
copies of one image give the same values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import cv2
import numpy as np

_UINT16_TO_255 = 257.0  # 65535 / 255: maps the 16-bit range exactly onto 0-255


def to_gray255(image: np.ndarray) -> np.ndarray:
    """Return a 2-D image as contiguous float64 gray on the 0-255 scale.

    Args:
        image: 2-D uint8 (kept as is), uint16 (divided by 257 so 65535 -> 255) or float
            (assumed to be on the 0-255 scale already).

    Returns:
        A float64 (H, W) array.

    Raises:
        ValueError: for other shapes or dtypes, or an empty image. Colour images must be
            converted to gray by the decoder first.
    """
    image = np.asarray(image)
    if image.ndim != 2:
        msg = (
            f"expected a 2-D gray image, got shape {image.shape}; convert colour images to "
            "gray before computing features"
        )
        raise ValueError(msg)
    if image.size == 0:
        msg = f"expected a non-empty image, got shape {image.shape}"
        raise ValueError(msg)
    if image.dtype == np.uint8:
        gray = image.astype(np.float64)
    elif image.dtype == np.uint16:
        gray = image.astype(np.float64) / _UINT16_TO_255
    elif np.issubdtype(image.dtype, np.floating):
        gray = image.astype(np.float64)
    else:
        msg = (
            f"unsupported image dtype {image.dtype}; pass uint8, uint16 or float "
            "(already on the 0-255 scale)"
        )
        raise ValueError(msg)
    return np.ascontiguousarray(gray)


def brightness(gray255: np.ndarray) -> float:
    """Mean gray level scaled to 0-1."""
    return float(np.mean(gray255) / 255.0)


def clarity(gray255: np.ndarray) -> float:
    """Variance of the Laplacian (default 3x3 aperture): high for sharp, low for blurred."""
    return float(cv2.Laplacian(gray255, cv2.CV_64F).var())


def contrast(gray255: np.ndarray) -> float:
    """Standard deviation of the gray levels scaled to 0-1 (RMS contrast)."""
    return float(np.std(gray255) / 255.0)


FEATURES: dict[str, Callable[[np.ndarray], float]] = {
    "brightness": brightness,
    "clarity": clarity,
    "contrast": contrast,
}
FEATURE_NAMES: tuple[str, ...] = tuple(FEATURES)


def _check_names(names: Sequence[str]) -> None:
    unknown = [name for name in names if name not in FEATURES]
    if unknown:
        msg = f"unknown feature(s) {unknown}; known features are {list(FEATURE_NAMES)}"
        raise ValueError(msg)


def image_features(image: np.ndarray, names: Sequence[str] = FEATURE_NAMES) -> np.ndarray:
    """Compute the named features of one image.

    Args:
        image: a 2-D gray image, see `to_gray255`.
        names: feature names from `FEATURES`, in the order wanted.

    Returns:
        A float64 array with one value per name.
    """
    _check_names(names)
    gray = to_gray255(image)
    return np.array([FEATURES[name](gray) for name in names], dtype=np.float64)


def image_feature_table(
    images: Iterable[np.ndarray], names: Sequence[str] = FEATURE_NAMES
) -> dict[str, np.ndarray]:
    """Compute features for many images, shaped as `binning.sensitivity_report` expects.

    Args:
        images: 2-D gray images (sizes may differ).
        names: feature names from `FEATURES`.

    Returns:
        ``{name: float64 array of length len(images)}`` in the order of `names`.
    """
    _check_names(names)
    rows = [image_features(image, names) for image in images]
    table = np.array(rows, dtype=np.float64).reshape(len(rows), len(names))  # (N, F)
    return {name: table[:, i].copy() for i, name in enumerate(names)}
