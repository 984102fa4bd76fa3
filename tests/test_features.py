"""Image features on synthetic images with known answers or known orderings."""

import cv2
import numpy as np
import pytest

from solar_defect.analysis.features import (
    FEATURE_NAMES,
    brightness,
    clarity,
    contrast,
    image_feature_table,
    image_features,
    to_gray255,
)


def _noise_image(seed: int = 0, size: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(40, 216, size=(size, size), dtype=np.uint8)


def test_feature_names_order() -> None:
    assert FEATURE_NAMES == ("brightness", "clarity", "contrast")


def test_to_gray255_scales_each_dtype() -> None:
    u8 = np.array([[0, 128], [200, 255]], dtype=np.uint8)
    u16 = u8.astype(np.uint16) * 257
    f32 = u8.astype(np.float32)

    for image in (u8, u16, f32):
        gray = to_gray255(image)
        assert gray.dtype == np.float64
        np.testing.assert_array_equal(gray, u8.astype(np.float64))
    assert to_gray255(np.array([[65535]], dtype=np.uint16))[0, 0] == 255.0


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (np.zeros((4, 4, 3), dtype=np.uint8), "2-D gray"),
        (np.zeros(4, dtype=np.uint8), "2-D gray"),
        (np.zeros((4, 4), dtype=np.int32), "unsupported image dtype int32"),
        (np.zeros((4, 4), dtype=bool), "unsupported image dtype bool"),
        (np.zeros((0, 4), dtype=np.uint8), "non-empty"),
    ],
)
def test_to_gray255_rejects_bad_input(image: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        to_gray255(image)


def test_known_values() -> None:
    half = np.zeros((8, 8), dtype=np.uint8)
    half[:, 4:] = 255
    gray = to_gray255(half)
    assert brightness(gray) == pytest.approx(0.5)
    assert contrast(gray) == pytest.approx(0.5)

    # Default Laplacian aperture is the 4-neighbour kernel: an impulse of 1 gives one -4 and
    # four 1s among 25 pixels, so the variance is (16 + 4) / 25.
    impulse = np.zeros((5, 5), dtype=np.float64)
    impulse[2, 2] = 1.0
    assert clarity(impulse) == pytest.approx(0.8)


def test_flat_image_has_no_contrast_or_clarity() -> None:
    values = image_features(np.full((32, 32), 100, dtype=np.uint8))
    np.testing.assert_allclose(values, [100 / 255, 0.0, 0.0], atol=1e-15)


def test_darker_is_less_bright() -> None:
    image = _noise_image()
    assert brightness(to_gray255(image // 2)) < brightness(to_gray255(image))


def test_blurred_is_less_clear() -> None:
    image = _noise_image()
    blurred = cv2.GaussianBlur(image, (7, 7), 2.0)
    assert clarity(to_gray255(blurred)) < 0.2 * clarity(to_gray255(image))


def test_uint16_matches_uint8_equivalent() -> None:
    image = _noise_image(seed=1)
    np.testing.assert_array_equal(
        image_features(image.astype(np.uint16) * 257), image_features(image)
    )


def test_image_features_follows_names_and_rejects_unknown() -> None:
    image = _noise_image(seed=2)
    everything = image_features(image)
    assert everything.dtype == np.float64
    np.testing.assert_array_equal(
        image_features(image, ["contrast", "brightness"]), everything[[2, 0]]
    )
    with pytest.raises(ValueError, match="known features are"):
        image_features(image, ["sharpness"])


def test_image_feature_table_columns_match_single_images() -> None:
    images = [_noise_image(seed=s, size=16 + 8 * s) for s in range(3)]
    table = image_feature_table(images)
    assert list(table) == list(FEATURE_NAMES)
    for i, image in enumerate(images):
        np.testing.assert_array_equal([table[n][i] for n in FEATURE_NAMES], image_features(image))
