"""ELDataModule: batches, counts, augmentation only on training data, balancing."""

import numpy as np
import pytest
import torch

from solar_defect.data import ELDataModule
from solar_defect.errors import UserInputError

TARGETED = {
    "name": "targeted",
    "mode": "expand",
    "classes": {
        "functional": ["identity", "hflip"],
        "defective": ["identity", "hflip", "brightness", "clarity"],
    },
}


def make_dm(root, tmp_path, **kwargs) -> ELDataModule:
    options = {
        "source": "folder",
        "root": str(root),
        "image_size": 32,
        "batch_size": 8,
        "cache_dir": str(tmp_path / "cache"),
        "seed": 0,
    }
    dm = ELDataModule(**{**options, **kwargs})
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_batches_are_uint8_images_labels_and_indices(synthetic_root, tmp_path):
    dm = make_dm(synthetic_root, tmp_path)
    images, labels, index = next(iter(dm.val_dataloader()))
    assert images.shape == (8, 1, 32, 32)
    assert images.dtype == torch.uint8
    assert labels.dtype == torch.int64
    assert index.tolist() == list(range(8))
    assert dm.class_names == ["functional", "defective"]
    assert dm.num_classes == 2


def test_counts_follow_split_and_expansion(synthetic_root, tmp_path):
    dm = make_dm(synthetic_root, tmp_path, augmentation=TARGETED)
    assert dm.counts("val") == {"functional": 8, "defective": 8}
    assert dm.counts("train") == {"functional": 16, "defective": 32}


def test_validation_is_never_augmented(synthetic_root, tmp_path):
    plain = make_dm(synthetic_root, tmp_path)
    augmented = make_dm(synthetic_root, tmp_path, augmentation=TARGETED, balance="sampler")
    a = next(iter(plain.val_dataloader()))[0]
    b = next(iter(augmented.val_dataloader()))[0]
    assert torch.equal(a, b)
    rows = augmented.splits["val"]
    assert torch.equal(a[:, 0], torch.from_numpy(augmented.decoded.images[rows[:8]]))


def test_expanded_training_set_is_deterministic(synthetic_root, tmp_path):
    one = make_dm(synthetic_root, tmp_path, augmentation=TARGETED)
    two = make_dm(synthetic_root, tmp_path, augmentation=TARGETED)
    n = len(one.datasets["train"])
    assert torch.equal(
        one.datasets["train"].__getitems__(list(range(n)))[0],
        two.datasets["train"].__getitems__(list(range(n)))[0],
    )


def test_cache_hit_on_second_setup(synthetic_root, tmp_path):
    assert not make_dm(synthetic_root, tmp_path).cache_hit
    assert make_dm(synthetic_root, tmp_path).cache_hit


def test_loss_weights_only_when_asked(synthetic_root, tmp_path):
    assert make_dm(synthetic_root, tmp_path).loss_weights() is None
    dm = make_dm(synthetic_root, tmp_path, augmentation=TARGETED, balance="loss_weights")
    # 16 functional + 32 defective after expansion: N / (K n_c)
    assert dm.loss_weights() == pytest.approx([48 / 32, 48 / 64])


def test_sampler_balances_training_batches(synthetic_root, tmp_path):
    dm = make_dm(synthetic_root, tmp_path, augmentation=TARGETED, balance="sampler")
    labels = torch.cat([batch[1] for _ in range(40) for batch in dm.train_dataloader()])
    assert abs(labels.float().mean().item() - 0.5) < 0.05


def test_bad_balance_and_sizes_are_rejected(synthetic_root, tmp_path):
    with pytest.raises(UserInputError, match="unknown balance 'oversample'"):
        ELDataModule(balance="oversample")
    with pytest.raises(UserInputError, match="image_size must be >= 16"):
        ELDataModule(image_size=4)


def test_skip_policy_leaves_bad_images_out(synthetic_root, tmp_path):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(synthetic_root, root)
    (root / "defective" / "cell_03.png").write_bytes(b"garbage")
    with pytest.raises(UserInputError, match=r"cell_03\.png"):
        make_dm(root, tmp_path, cache_dir=None)
    dm = make_dm(root, tmp_path, on_bad_image="skip", cache_dir=None)
    assert dm.skipped_paths == ["defective/cell_03.png"]
    total = sum(dm.counts("train").values()) + sum(dm.counts("val").values())
    assert total == 31
    all_rows = np.concatenate([dm.splits["train"], dm.splits["val"]])
    assert dm.cells.table.rel_paths.index("defective/cell_03.png") not in all_rows
