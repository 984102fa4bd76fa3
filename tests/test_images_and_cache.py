"""Decoding every supported image kind, and the decode-once cache."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from solar_defect.analysis.features import image_features
from solar_defect.data import cache
from solar_defect.data.imageio import read_gray
from solar_defect.errors import BadImageError


@pytest.fixture
def gray() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (40, 56), dtype=np.uint8)


@pytest.mark.parametrize("name", ["a.png", "b.tif", "with space é.png", "ячейка.png"])
def test_8bit_formats_and_awkward_names_round_trip(tmp_path, gray, name):
    path = tmp_path / name
    ok, encoded = cv2.imencode(Path(name).suffix, gray)
    assert ok
    encoded.tofile(path)
    assert np.array_equal(read_gray(path), gray)


def test_16bit_png_keeps_depth_and_features_match_8bit(tmp_path, gray):
    path = tmp_path / "deep.png"
    cv2.imwrite(str(path), gray.astype(np.uint16) * 257)
    deep = read_gray(path)
    assert deep.dtype == np.uint16
    assert np.allclose(image_features(deep), image_features(gray))


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_colour_becomes_gray(tmp_path, gray, suffix):
    path = tmp_path / f"rgb{suffix}"
    cv2.imwrite(str(path), cv2.merge([gray, gray, gray]))
    decoded = read_gray(path)
    assert decoded.ndim == 2
    assert np.abs(decoded.astype(int) - gray).mean() < (0.5 if suffix == ".png" else 12)


@pytest.mark.parametrize("content", [b"", b"not an image at all", "truncated"])
def test_bad_files_raise_bad_image_error(tmp_path, gray, content):
    path = tmp_path / "bad.png"
    if content == "truncated":
        data = cv2.imencode(".png", gray)[1].tobytes()
        content = data[: len(data) // 2]
    path.write_bytes(content)
    with pytest.raises(BadImageError, match=r"cannot decode image .*bad.png.*on_bad_image=skip"):
        read_gray(path)


def _write_mixed(tmp_path: Path) -> list[Path]:
    paths = []
    for i, shape in enumerate([(30, 30), (64, 48), (100, 100)]):
        path = tmp_path / f"img{i}.png"
        cv2.imwrite(str(path), np.full(shape, 40 * (i + 1), np.uint8))
        paths.append(path)
    return paths


def test_mixed_sizes_are_resized_and_features_use_originals(tmp_path):
    paths = _write_mixed(tmp_path)
    cells = cache.build(paths, 24)
    assert cells.images.shape == (3, 24, 24)
    assert cells.images.dtype == np.uint8
    assert np.allclose(cells.features["brightness"], [40 / 255, 80 / 255, 120 / 255])


def test_second_load_is_a_cache_hit_without_decoding(tmp_path, monkeypatch):
    paths = _write_mixed(tmp_path)
    first, hit = cache.load_or_build(paths, 24, tmp_path / "cache")
    assert not hit

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again despite a cache file")

    monkeypatch.setattr(cache, "decode_one", no_decoding)
    second, hit = cache.load_or_build(paths, 24, tmp_path / "cache")
    assert hit
    assert np.array_equal(first.images, second.images)
    assert first.features.keys() == second.features.keys()


def test_cache_key_follows_content_and_size(tmp_path):
    paths = _write_mixed(tmp_path)
    key = cache.cache_key(paths, 24)
    assert cache.cache_key(paths, 32) != key
    cv2.imwrite(str(paths[0]), np.zeros((31, 31), np.uint8))
    assert cache.cache_key(paths, 24) != key


def test_skip_policy_records_bad_files(tmp_path):
    paths = _write_mixed(tmp_path)
    paths[1].write_bytes(b"")
    with pytest.raises(BadImageError):
        cache.build(paths, 24, "error")
    cells = cache.build(paths, 24, "skip")
    assert cells.bad == [1]
