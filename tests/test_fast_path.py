"""The fast data path (decode cache, uint8 batches, cv2 transforms) against the plain path.

The plain path is what benchmarks/loader.py times: PIL reads the file every time, torchvision
`transforms.v2` transforms and normalises it. The two must agree on what a sample *is*, so the
speed-up is not bought with different pixels. Resizing is the one place the two differ by
design (cv2 INTER_AREA against torchvision's antialiased bilinear): there the plain reference
uses the same area filter, and the tolerance is stated per test.
"""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from solar_defect.data import ELDataModule, cache
from solar_defect.models.backbone import GRAY_MEAN, GRAY_STD, GrayClassifier

NATIVE = 48  # the synthetic cells' side (tests/conftest.py): no resize at this image_size


def make_dm(root: Path, tmp_path: Path, image_size: int = NATIVE, **kwargs) -> ELDataModule:
    dm = ELDataModule(
        source="folder",
        root=str(root),
        image_size=image_size,
        batch_size=8,
        cache_dir=str(tmp_path / "cache"),
        seed=0,
        **kwargs,
    )
    dm.prepare_data()
    dm.setup("fit")
    return dm


def expand(functional: list[str], defective: list[str], **params) -> dict:
    return {
        "name": "probe",
        "mode": "expand",
        "classes": {"functional": functional, "defective": defective},
        "params": params,
    }


def train_samples(dm: ELDataModule) -> tuple[torch.Tensor, list[Path], list[str], list[str]]:
    """The whole training set through the fast path, with each sample's file, class, transform."""
    ds = dm.datasets["train"]
    images, _, _ = ds.__getitems__(list(range(len(ds))))  # (N, 1, S, S) uint8
    paths = [dm.cells.table.paths[i] for i in ds.source_index]
    classes = [dm.class_names[label] for label in ds.labels]
    names = [dm.recipe.classes[c][slot] for c, slot in zip(classes, ds.slots, strict=True)]
    return images, paths, classes, names


def plain_read(path: Path) -> torch.Tensor:
    """(1, H, W) uint8, as the plain loader reads it: PIL, gray, torchvision image."""
    with Image.open(path) as image:
        return F.to_image(image.convert("L"))


# -- the cache ------------------------------------------------------------------------------------
def test_second_datamodule_decodes_nothing_and_serves_the_same_batches(
    synthetic_root, tmp_path, monkeypatch
):
    recipe = expand(["identity", "hflip"], ["identity", "brightness", "clarity"])
    first = make_dm(synthetic_root, tmp_path, 32, augmentation=recipe)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded a file despite a matching cache")

    monkeypatch.setattr(cache, "decode_one", no_decoding)
    second = make_dm(synthetic_root, tmp_path, 32, augmentation=recipe)
    assert second.cache_hit
    for name in first.decoded.features:
        np.testing.assert_array_equal(first.decoded.features[name], second.decoded.features[name])
    assert torch.equal(train_samples(first)[0], train_samples(second)[0])


def test_new_image_size_is_a_cache_miss(synthetic_root, tmp_path):
    make_dm(synthetic_root, tmp_path, 32)
    other = make_dm(synthetic_root, tmp_path, 24)
    assert not other.cache_hit
    assert other.decoded.images.shape[1:] == (24, 24)
    assert len(list((tmp_path / "cache").glob("cells-*.npz"))) == 2


def test_every_split_indexes_the_one_cache_array(synthetic_root, tmp_path):
    recipe = expand(["identity", "hflip"], ["identity", "hflip", "brightness", "clarity"])
    dm = make_dm(synthetic_root, tmp_path, 32, augmentation=recipe)
    train = dm.datasets["train"]
    assert len(train) == 3 * len(dm.splits["train"])  # 8 x2 + 8 x4 from 16 sources
    for ds in dm.datasets.values():
        assert ds.images is dm.decoded.images  # no pixel copy per split or per expansion
    index_bytes = train.labels.nbytes + train.source_index.nbytes + train.slots.nbytes
    assert index_bytes == 3 * 8 * len(train)


# -- fast path == plain path ----------------------------------------------------------------------
def test_identity_without_resize_gives_the_plain_normalised_tensor(synthetic_root, tmp_path):
    dm = make_dm(synthetic_root, tmp_path)
    images, paths, _, _ = train_samples(dm)
    normalise = GrayClassifier(nn.Identity())  # the model's own uint8 -> float step
    plain = v2.Compose(
        [v2.ToDtype(torch.float32, scale=True), v2.Normalize([GRAY_MEAN], [GRAY_STD])]
    )
    for image, path in zip(images, paths, strict=True):
        assert torch.equal(image, plain_read(path))  # lossless: same pixels from both decoders
        fast = normalise(image[None])[0]
        torch.testing.assert_close(fast, plain(plain_read(path)), rtol=0, atol=1e-5)


def test_per_class_flips_equal_torchvision(synthetic_root, tmp_path):
    dm = make_dm(synthetic_root, tmp_path, augmentation=expand(["hflip"], ["vflip"]))
    images, paths, classes, _ = train_samples(dm)
    plain = {
        "functional": v2.RandomHorizontalFlip(p=1.0),
        "defective": v2.RandomVerticalFlip(p=1.0),
    }
    assert set(classes) == set(plain)
    for image, path, cls in zip(images, paths, classes, strict=True):
        assert torch.equal(image, plain[cls](plain_read(path)))


def test_gamma_and_blur_equal_torchvision_within_one_level(synthetic_root, tmp_path):
    gamma, sigma = 1.4, 1.5
    recipe = expand(
        ["brightness"],
        ["clarity"],
        brightness={"gamma": [gamma, gamma]},
        clarity={"blur_prob": 1.0, "sigma": [sigma, sigma]},
    )
    dm = make_dm(synthetic_root, tmp_path, augmentation=recipe)
    images, paths, classes, _ = train_samples(dm)
    size = 2 * int(np.ceil(3 * sigma)) + 1  # the kernel cv2 picks for a uint8 image
    plain = {
        "functional": lambda x: F.adjust_gamma(x, gamma),
        "defective": lambda x: F.gaussian_blur(x, [size, size], [sigma, sigma]),
    }
    for image, path, cls in zip(images, paths, classes, strict=True):
        diff = (image.int() - plain[cls](plain_read(path)).int()).abs()
        # rounding only: our LUT rounds to nearest, torchvision truncates; cv2 blurs in fixed point
        assert diff.max() <= 1, (cls, path)


def test_resized_cache_equals_the_plain_read_with_the_same_area_filter(synthetic_root, tmp_path):
    dm = make_dm(synthetic_root, tmp_path, 32)
    images, paths, _, _ = train_samples(dm)
    for image, path in zip(images, paths, strict=True):
        pixels = plain_read(path)[0].numpy()
        area = cv2.resize(pixels, (32, 32), interpolation=cv2.INTER_AREA)
        assert np.array_equal(image[0].numpy(), area)


@pytest.mark.parametrize("size", [24, 16])
def test_integer_downscale_matches_torch_area_interpolation(synthetic_root, tmp_path, size):
    dm = make_dm(synthetic_root, tmp_path, size)
    images, paths, _, _ = train_samples(dm)
    for image, path in zip(images, paths, strict=True):
        pixels = plain_read(path)[None].float()  # (1, 1, 48, 48)
        area = torch.nn.functional.interpolate(pixels, size=(size, size), mode="area")
        # an exact box mean both ways; ties of .5 may round apart
        assert (image.float() - area[0].round()).abs().max() <= 1
