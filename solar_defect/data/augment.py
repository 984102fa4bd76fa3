"""Per-image transforms for class-targeted augmentation.

Every transform maps a 2-D uint8 gray image to a *new* uint8 array of the same shape. Inputs are
views into the shared decode cache, so no transform may write into its input. Random transforms
draw their parameters from the given ``numpy.random.Generator``, which makes a materialised
sample a pure function of (image, transform, generator state).
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import cv2
import numpy as np

Transform = Callable[..., np.ndarray]

# Ranges are [low, high] drawn uniformly per call; a scalar is a probability. Brightness and
# clarity defaults span the spread the sensitivity analysis finds in ELPV cells.
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "brightness": {"gamma": (0.6, 1.6)},
    "clarity": {"blur_prob": 0.5, "sigma": (0.5, 2.0), "amount": (0.5, 1.5)},
    "contrast": {"factor": (0.7, 1.3)},
    "noise": {"sigma": (2.0, 10.0)},
}

# What each parameter may hold, checked by the recipe parser: "positive" and "non_negative" are
# [low, high] ranges with that bound; "probability" is a scalar in [0, 1].
PARAM_KINDS: dict[str, dict[str, str]] = {
    "brightness": {"gamma": "positive"},
    "clarity": {"blur_prob": "probability", "sigma": "positive", "amount": "non_negative"},
    "contrast": {"factor": "non_negative"},
    "noise": {"sigma": "non_negative"},
}


def _uniform(rng: np.random.Generator, bounds: Sequence[float]) -> float:
    low, high = bounds
    return float(rng.uniform(low, high))


def identity(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Return a copy, so callers may change the result without touching the cache."""
    return image.copy()


def hflip(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mirror left-right; EL cells have no preferred horizontal orientation."""
    return cv2.flip(image, 1)


def vflip(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mirror top-bottom."""
    return cv2.flip(image, 0)


def rot180(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rotate by 180 degrees (both flips at once)."""
    return cv2.flip(image, -1)


def brightness(
    image: np.ndarray,
    rng: np.random.Generator,
    gamma: Sequence[float] = DEFAULT_PARAMS["brightness"]["gamma"],
) -> np.ndarray:
    """Gamma curve with gamma drawn from ``gamma``: > 1 darkens, < 1 brightens.

    Gamma keeps black and white fixed, so the cell's busbars and cracks stay visible while the
    overall level moves, which decouples brightness from the label.
    """
    g = _uniform(rng, gamma)
    lut = np.rint(255.0 * np.linspace(0.0, 1.0, 256) ** g).astype(np.uint8)
    return cv2.LUT(image, lut)


def clarity(
    image: np.ndarray,
    rng: np.random.Generator,
    blur_prob: float = DEFAULT_PARAMS["clarity"]["blur_prob"],
    sigma: Sequence[float] = DEFAULT_PARAMS["clarity"]["sigma"],
    amount: Sequence[float] = DEFAULT_PARAMS["clarity"]["amount"],
) -> np.ndarray:
    """Blur (with probability ``blur_prob``) or sharpen, moving the Laplacian variance both ways.

    Blur is a Gaussian with standard deviation drawn from ``sigma``. Sharpening is an unsharp
    mask, ``(1 + a) * image - a * blurred`` with ``a`` drawn from ``amount`` and the mask's blur
    drawn from ``sigma`` too.
    """
    blur = rng.random() < blur_prob
    s = _uniform(rng, sigma)
    blurred = cv2.GaussianBlur(image, (0, 0), sigmaX=s)
    if blur:
        return blurred
    a = _uniform(rng, amount)
    return cv2.addWeighted(image, 1.0 + a, blurred, -a, 0.0)


def contrast(
    image: np.ndarray,
    rng: np.random.Generator,
    factor: Sequence[float] = DEFAULT_PARAMS["contrast"]["factor"],
) -> np.ndarray:
    """Scale deviations from the image mean by a factor drawn from ``factor`` (mean kept)."""
    f = _uniform(rng, factor)
    mean = float(image.mean())
    # addWeighted rounds and saturates to uint8 in one pass; the second input is unused (beta=0).
    return cv2.addWeighted(image, f, image, 0.0, mean * (1.0 - f))


def noise(
    image: np.ndarray,
    rng: np.random.Generator,
    sigma: Sequence[float] = DEFAULT_PARAMS["noise"]["sigma"],
) -> np.ndarray:
    """Add zero-mean Gaussian noise with standard deviation drawn from ``sigma`` (gray levels)."""
    s = _uniform(rng, sigma)
    noisy = image.astype(np.float32) + s * rng.standard_normal(image.shape, dtype=np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


TRANSFORMS: dict[str, Transform] = {
    "identity": identity,
    "hflip": hflip,
    "vflip": vflip,
    "rot180": rot180,
    "brightness": brightness,
    "clarity": clarity,
    "contrast": contrast,
    "noise": noise,
}

# Transforms whose output depends on the generator; repeating one of these in an expand list
# yields new pixels, repeating any other yields an exact duplicate.
RANDOM_TRANSFORMS: frozenset[str] = frozenset(DEFAULT_PARAMS)


def apply_transform(
    name: str,
    image: np.ndarray,
    rng: np.random.Generator,
    params: Mapping[str, Any] | None = None,
) -> np.ndarray:
    """Apply transform ``name`` with ``params`` (this transform's parameters) over its defaults.

    Raises:
        ValueError: ``name`` is not in ``TRANSFORMS``.
    """
    if name not in TRANSFORMS:
        raise ValueError(f"unknown transform {name!r}; use one of: {', '.join(TRANSFORMS)}")
    merged = {**DEFAULT_PARAMS.get(name, {}), **(params or {})}
    return TRANSFORMS[name](image, rng, **merged)
