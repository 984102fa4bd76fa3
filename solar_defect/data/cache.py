"""Decode every image once: resized uint8 pixels and image features, kept in memory and on disk.

Decoding PNGs is the slowest step of a small-model epoch, and a sweep repeats it in every job. The
cache file is keyed by the file list, file sizes, modification times and the target size, so a
changed file or a new image size builds a fresh cache and a second run decodes nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from solar_defect.analysis.features import FEATURE_NAMES, image_features
from solar_defect.data.imageio import read_gray, to_uint8
from solar_defect.errors import BadImageError, UserInputError

log = logging.getLogger(__name__)

CACHE_VERSION = 1
BAD_IMAGE_POLICIES = ("error", "skip")


@dataclass(frozen=True)
class DecodedCells:
    """Decoded images aligned with the file list they were built from.

    Attributes:
        images: (N, S, S) uint8 gray pixels resized to the training size (zeros where bad).
        features: name -> (N,) float64, computed on the original image before resizing.
        bad: indices of files that could not be decoded (only under the `skip` policy).
    """

    images: np.ndarray
    features: dict[str, np.ndarray]
    bad: list[int]


def cache_key(paths: list[Path], image_size: int) -> str:
    """Hash of what decides the cache's content: files, their sizes and mtimes, target size."""
    entries = []
    for path in paths:
        try:
            stat = path.stat()
            entries.append([str(path), stat.st_size, stat.st_mtime_ns])
        except OSError:
            entries.append([str(path), -1, -1])
    payload = json.dumps([CACHE_VERSION, image_size, list(FEATURE_NAMES), entries])
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def decode_one(path: Path, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Resized uint8 pixels and the features of the original image."""
    gray = read_gray(path)
    features = image_features(gray)
    pixels = to_uint8(gray)
    if pixels.shape != (image_size, image_size):
        pixels = cv2.resize(pixels, (image_size, image_size), interpolation=cv2.INTER_AREA)
    return pixels, features


def build(
    paths: list[Path], image_size: int, on_bad_image: str = "error", workers: int | None = None
) -> DecodedCells:
    """Decode all files in threads (OpenCV releases the GIL while decoding)."""
    if on_bad_image not in BAD_IMAGE_POLICIES:
        raise UserInputError(
            f"data.on_bad_image must be one of {list(BAD_IMAGE_POLICIES)}, got {on_bad_image!r}"
        )
    images = np.zeros((len(paths), image_size, image_size), dtype=np.uint8)
    features = np.full((len(paths), len(FEATURE_NAMES)), np.nan)
    bad: list[int] = []

    def work(i: int) -> None:
        try:
            images[i], features[i] = decode_one(paths[i], image_size)
        except BadImageError:
            if on_bad_image == "error":
                raise
            bad.append(i)

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        for future in [pool.submit(work, i) for i in range(len(paths))]:
            future.result()
    return DecodedCells(images, dict(zip(FEATURE_NAMES, features.T, strict=True)), sorted(bad))


def load_or_build(
    paths: list[Path],
    image_size: int,
    cache_dir: Path | None,
    on_bad_image: str = "error",
) -> tuple[DecodedCells, bool]:
    """The decoded cells, from `cache_dir` when a matching file exists; True when it was a hit.

    A cached list of bad files is honoured only under the `skip` policy; under `error` a cache
    that recorded bad files is rebuilt so the user gets the error for the first bad file.
    """
    path = Path(cache_dir) / f"cells-{cache_key(paths, image_size)}.npz" if cache_dir else None
    if path is not None and path.is_file():
        with np.load(path) as stored:
            cells = DecodedCells(
                stored["images"],
                {name: stored[f"feature_{name}"] for name in FEATURE_NAMES},
                stored["bad"].tolist(),
            )
        if not cells.bad or on_bad_image == "skip":
            log.info("Decode cache hit: %s (%d images)", path, len(paths))
            return cells, True
    log.info("Decoding %d images at %d px (cache miss)", len(paths), image_size)
    cells = build(paths, image_size, on_bad_image)
    if path is not None:
        _save(path, cells)
    return cells, False


def _save(path: Path, cells: DecodedCells) -> None:
    """Write atomically, so a killed run never leaves a half-written cache behind."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
        arrays = {f"feature_{name}": values for name, values in cells.features.items()}
        np.savez(tmp, images=cells.images, bad=np.asarray(cells.bad, dtype=np.int64), **arrays)
        tmp.replace(path)
    except OSError as err:
        log.warning("Could not write the decode cache %s (%s); continuing without it", path, err)
