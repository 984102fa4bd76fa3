"""Invariants of the per-image transforms, on synthetic arrays."""

import cv2
import numpy as np
import pytest

from solar_defect.data.augment import DEFAULT_PARAMS, TRANSFORMS, apply_transform


@pytest.fixture
def image() -> np.ndarray:
    """A 64x48 cell-like image: smooth gradient, dark grid lines and some texture."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:64, 0:48]
    img = 60 + 2.0 * x + 1.0 * y + rng.normal(0, 12, (64, 48))
    img[::16, :] = 10
    img[:, ::12] = 10
    return np.clip(img, 0, 255).astype(np.uint8)


def _laplacian_var(img: np.ndarray) -> float:
    return float(cv2.Laplacian(img.astype(np.float64), cv2.CV_64F).var())


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_transform_keeps_shape_dtype_and_input(name: str, image: np.ndarray) -> None:
    before = image.copy()
    out = apply_transform(name, image, np.random.default_rng(1))
    assert out.shape == image.shape
    assert out.dtype == np.uint8
    assert not np.shares_memory(out, image)
    np.testing.assert_array_equal(image, before)


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_transform_accepts_read_only_view(name: str, image: np.ndarray) -> None:
    cache = np.stack([image, image])
    cache.setflags(write=False)  # the decode cache is shared; writing to it must fail loudly
    out = apply_transform(name, cache[1], np.random.default_rng(2))
    assert out.shape == image.shape


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_same_generator_state_gives_same_pixels(name: str, image: np.ndarray) -> None:
    a = apply_transform(name, image, np.random.default_rng(3))
    b = apply_transform(name, image, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)


def test_geometric_identities(image: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    flip = TRANSFORMS["hflip"]
    np.testing.assert_array_equal(flip(flip(image, rng), rng), image)
    np.testing.assert_array_equal(flip(image, rng), image[:, ::-1])
    np.testing.assert_array_equal(TRANSFORMS["vflip"](image, rng), image[::-1])
    np.testing.assert_array_equal(
        TRANSFORMS["rot180"](image, rng), TRANSFORMS["vflip"](flip(image, rng), rng)
    )
    np.testing.assert_array_equal(TRANSFORMS["identity"](image, rng), image)


@pytest.mark.parametrize(("gamma", "darker"), [((1.5, 2.0), True), ((0.5, 0.8), False)])
def test_brightness_gamma_direction(image: np.ndarray, gamma: tuple, darker: bool) -> None:
    out = apply_transform("brightness", image, np.random.default_rng(0), {"gamma": gamma})
    assert (out.mean() < image.mean()) == darker
    # Gamma is monotone and keeps the end points.
    order = np.argsort(image, axis=None, kind="stable")
    assert np.all(np.diff(out.ravel()[order].astype(int)) >= 0)


def test_brightness_gamma_one_is_identity(image: np.ndarray) -> None:
    out = apply_transform("brightness", image, np.random.default_rng(0), {"gamma": (1.0, 1.0)})
    np.testing.assert_array_equal(out, image)


def test_clarity_blur_lowers_and_sharpen_raises_laplacian_variance(image: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    blurred = apply_transform("clarity", image, rng, {"blur_prob": 1.0})
    sharpened = apply_transform("clarity", image, rng, {"blur_prob": 0.0})
    assert _laplacian_var(blurred) < _laplacian_var(image) < _laplacian_var(sharpened)


def test_clarity_chooses_blur_about_half_the_time(image: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    base = _laplacian_var(image)
    blurs = sum(_laplacian_var(apply_transform("clarity", image, rng)) < base for _ in range(400))
    assert 160 < blurs < 240


def test_contrast_scales_spread_and_keeps_mean(image: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    low = apply_transform("contrast", image, rng, {"factor": (0.5, 0.5)})
    high = apply_transform("contrast", image, rng, {"factor": (1.2, 1.2)})
    assert low.std() == pytest.approx(0.5 * image.std(), rel=0.02)
    assert high.std() > image.std()
    assert low.mean() == pytest.approx(image.mean(), abs=1.0)


def test_noise_sigma_matches_range() -> None:
    flat = np.full((200, 200), 128, np.uint8)
    out = apply_transform("noise", flat, np.random.default_rng(0), {"sigma": (5.0, 5.0)})
    assert out.astype(float).std() == pytest.approx(5.0, rel=0.05)
    assert out.astype(float).mean() == pytest.approx(128, abs=0.2)


def test_noise_zero_sigma_is_identity(image: np.ndarray) -> None:
    out = apply_transform("noise", image, np.random.default_rng(0), {"sigma": (0.0, 0.0)})
    np.testing.assert_array_equal(out, image)


def test_default_params_match_transform_signatures() -> None:
    rng = np.random.default_rng(0)
    img = np.zeros((8, 8), np.uint8)
    for name, params in DEFAULT_PARAMS.items():
        TRANSFORMS[name](img, rng, **params)


def test_unknown_transform_names_the_known_ones(image: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"unknown transform 'blur'.*hflip.*clarity"):
        apply_transform("blur", image, np.random.default_rng(0))
