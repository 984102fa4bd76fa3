"""Recipe parsing, expansion plans, per-sample determinism and class balancing."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch.utils.data import WeightedRandomSampler

from solar_defect.cli import CONFIG_DIR
from solar_defect.data.augment import DEFAULT_PARAMS, TRANSFORMS, apply_transform
from solar_defect.data.recipes import (
    Recipe,
    class_counts,
    expand_to_parity,
    expansion_plan,
    inverse_frequency_weights,
    parity_multipliers,
    parse_recipe,
    sample_image,
    sample_rng,
    sampler_weights,
)
from solar_defect.errors import UserInputError

CLASSES = ["functional", "defective"]
# The seed's training split: 754 functional + 358 defective.
SEED_LABELS = np.repeat([0, 1], [754, 358])
AUGMENTING = ["identity", "hflip", "brightness", "clarity"]
# The Hydra presets themselves, so a changed YAML file is what the tests see.
PRESETS: dict[str, dict[str, Any]] = {
    path.stem: OmegaConf.to_container(OmegaConf.load(path))
    for path in sorted((Path(CONFIG_DIR) / "augmentation").glob("*.yaml"))
    if path.stem in ("none", "flip", "all_classes", "targeted")
}


def _images(n: int, size: int = 24) -> np.ndarray:
    """Synthetic decode cache: (n, size, size) uint8, each image different."""
    rng = np.random.default_rng(123)
    return rng.integers(0, 256, (n, size, size), dtype=np.uint8)


def _plan_counts(recipe: Recipe, labels: np.ndarray = SEED_LABELS) -> list[int]:
    source, _ = expansion_plan(labels, recipe, CLASSES)
    return class_counts(labels[source], len(CLASSES)).tolist()


@pytest.mark.parametrize(
    ("preset", "expected"),
    [
        ("none", [754, 358]),
        ("flip", [1508, 716]),
        ("all_classes", [3016, 1432]),
        ("targeted", [1508, 1432]),
    ],
)
def test_seed_preset_counts(preset: str, expected: list[int]) -> None:
    assert _plan_counts(parse_recipe(PRESETS[preset], CLASSES)) == expected


def test_plan_stores_indices_with_slots_per_class() -> None:
    labels = np.array([1, 0, 1])
    recipe = parse_recipe(PRESETS["targeted"], CLASSES)
    source, slot = expansion_plan(labels, recipe, CLASSES)
    assert source.dtype == slot.dtype == np.int64
    assert source.tolist() == [0, 0, 0, 0, 1, 1, 2, 2, 2, 2]
    assert slot.tolist() == [0, 1, 2, 3, 0, 1, 0, 1, 2, 3]
    names = [recipe.classes[CLASSES[labels[s]]][k] for s, k in zip(source, slot, strict=True)]
    assert names[:6] == [*AUGMENTING, "identity", "hflip"]


def test_online_plan_has_each_image_once() -> None:
    cfg = {"mode": "online", "classes": {"defective": {"hflip": 0.5}}}
    source, slot = expansion_plan(SEED_LABELS, parse_recipe(cfg, CLASSES), CLASSES)
    np.testing.assert_array_equal(source, np.arange(len(SEED_LABELS)))
    assert not slot.any()


def test_plan_rejects_labels_outside_classes() -> None:
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 1\]"):
        expansion_plan(np.array([0, 2]), parse_recipe(PRESETS["none"], CLASSES), CLASSES)


def test_targeted_leaves_functional_images_unaugmented() -> None:
    labels = np.array([0, 1, 0, 1, 0])
    cache = _images(len(labels))
    cache.setflags(write=False)
    recipe = parse_recipe(PRESETS["targeted"], CLASSES)
    source, slot = expansion_plan(labels, recipe, CLASSES)
    plain = {"identity": lambda im: im, "hflip": lambda im: im[:, ::-1]}
    changed_defective = 0
    for i, (s, k) in enumerate(zip(source, slot, strict=True)):
        name = CLASSES[labels[s]]
        out = sample_image(cache[s], name, int(k), recipe, sample_rng(7, i))
        transform = recipe.classes[name][k]
        if name == "functional":
            np.testing.assert_array_equal(out, plain[transform](cache[s]))
        elif transform not in plain:
            changed_defective += not np.array_equal(out, cache[s])
    assert changed_defective == 4  # brightness and clarity on both defective images


def test_expand_pixels_depend_on_seed_and_index_only() -> None:
    cache = _images(3)
    recipe = parse_recipe(PRESETS["all_classes"], CLASSES)

    def make(seed: int, index: int) -> np.ndarray:
        return sample_image(cache[1], "defective", 2, recipe, sample_rng(seed, index))

    np.testing.assert_array_equal(make(0, 5), make(0, 5))
    assert not np.array_equal(make(0, 5), make(0, 6))
    assert not np.array_equal(make(0, 5), make(1, 5))


def test_sample_rng_epoch_changes_draws() -> None:
    a = sample_rng(0, 3, epoch=0).random()
    assert a == sample_rng(0, 3, epoch=0).random()
    assert a != sample_rng(0, 3, epoch=1).random()
    with pytest.raises(ValueError, match="non-negative"):
        sample_rng(-1, 0)


def test_online_mode_applies_each_transform_with_its_probability() -> None:
    image = _images(1)[0]
    before = image.copy()
    cfg = {"mode": "online", "classes": {"defective": {"hflip": 0.3, "vflip": 1.0}}}
    recipe = parse_recipe(cfg, CLASSES)
    rng = np.random.default_rng(0)
    outs = [sample_image(image, "defective", 0, recipe, rng) for _ in range(2000)]
    rot = np.mean([np.array_equal(o, image[::-1, ::-1]) for o in outs])
    vflipped = np.mean([np.array_equal(o, image[::-1]) for o in outs])
    assert rot == pytest.approx(0.3, abs=0.04)
    assert rot + vflipped == 1.0
    functional = sample_image(image, "functional", 0, recipe, rng)
    np.testing.assert_array_equal(functional, image)
    assert not np.shares_memory(functional, image)
    np.testing.assert_array_equal(image, before)


def test_online_order_is_fixed_by_registry() -> None:
    cfg = {"mode": "online", "classes": {"defective": {"noise": 0.1, "hflip": 0.5}}}
    assert list(parse_recipe(cfg, CLASSES).classes["defective"]) == ["hflip", "noise"]


def test_params_merge_over_defaults_and_reach_transforms() -> None:
    cfg = {"classes": {"defective": ["brightness"]}, "params": {"brightness": {"gamma": [2, 2]}}}
    recipe = parse_recipe(cfg, CLASSES)
    assert recipe.params["brightness"] == {"gamma": (2.0, 2.0)}
    assert recipe.params["clarity"] == DEFAULT_PARAMS["clarity"]
    image = _images(1)[0]
    expected = apply_transform("brightness", image, np.random.default_rng(0), {"gamma": (2, 2)})
    out = sample_image(image, "defective", 0, recipe, np.random.default_rng(0))
    np.testing.assert_array_equal(out, expected)


def test_parse_fills_missing_classes_in_data_order() -> None:
    recipe = parse_recipe({"classes": {"defective": ["hflip"]}}, CLASSES)
    assert list(recipe.classes) == CLASSES
    assert recipe.classes["functional"] == ("identity",)
    assert recipe.mode == "expand"


@pytest.mark.parametrize(
    ("cfg", "pattern"),
    [
        ({"mode": "offline"}, r"unknown mode 'offline'.*expand, online"),
        ({"classes": {"cracked": ["identity"]}}, r"unknown class.*'cracked'.*functional"),
        ({"classes": {"defective": ["blurr"]}}, r"unknown transform 'blurr'.*identity, hflip"),
        ({"classes": {"defective": []}}, r"'defective' needs a non-empty list"),
        ({"classes": {"defective": "hflip"}}, r"'defective' needs a non-empty list.*'hflip'"),
        (
            {"mode": "online", "classes": {"defective": {"hflip": 1.5}}},
            r"probability 1.5 of 'hflip'.*\[0, 1\]",
        ),
        (
            {"mode": "online", "classes": {"defective": ["hflip"]}},
            r"needs a mapping transform -> probability",
        ),
        ({"params": {"brightness": {"gamma": [1.6, 0.6]}}}, r"brightness.gamma.*low > high"),
        ({"params": {"brightness": {"gamma": [0.0, 1.0]}}}, r"brightness.gamma must be positive"),
        ({"params": {"noise": {"sigma": [-1, 2]}}}, r"noise.sigma must not be negative"),
        ({"params": {"noise": {"sigma": 3}}}, r"noise.sigma expects a range \[low, high\]"),
        ({"params": {"noise": {"sigma": [1, 2, 3]}}}, r"noise.sigma expects a range"),
        ({"params": {"clarity": {"blur_prob": 2}}}, r"probability 2 for clarity.blur_prob"),
        ({"params": {"noise": {"std": [1, 2]}}}, r"unknown parameter 'std'.*use one of: sigma"),
        ({"params": {"hflip": {"p": 0.5}}}, r"unknown parameter 'p'.*'hflip'; it takes none"),
        ({"params": {"warp": {}}}, r"unknown transform 'warp' in params"),
        ({"clases": {}}, r"unknown key\(s\) \['clases'\]"),
    ],
)
def test_bad_recipe_raises_one_clear_line(cfg: Mapping[str, Any], pattern: str) -> None:
    with pytest.raises(UserInputError, match=pattern) as info:
        parse_recipe(cfg, CLASSES)
    assert "\n" not in str(info.value)


def test_inverse_frequency_weights() -> None:
    counts = class_counts(SEED_LABELS, 2)
    weights = inverse_frequency_weights(counts)
    np.testing.assert_allclose(weights, [1112 / (2 * 754), 1112 / (2 * 358)])
    # Weighted counts are equal, so each class carries the same total loss weight.
    assert weights[0] * counts[0] == pytest.approx(weights[1] * counts[1])


def test_zero_count_class_is_rejected() -> None:
    with pytest.raises(ValueError, match="no training images"):
        inverse_frequency_weights(np.array([10, 0]))
    recipe = parse_recipe(PRESETS["flip"], CLASSES)
    with pytest.raises(ValueError, match=r"\['defective'\] have no training images"):
        expand_to_parity(recipe, np.array([10, 0]), CLASSES)


def test_weighted_sampler_draws_classes_evenly() -> None:
    weights = sampler_weights(SEED_LABELS, 2)
    generator = torch.Generator().manual_seed(0)
    sampler = WeightedRandomSampler(
        torch.from_numpy(weights), num_samples=20_000, replacement=True, generator=generator
    )
    drawn = SEED_LABELS[np.fromiter(iter(sampler), dtype=np.int64)]
    assert drawn.mean() == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_expand_to_parity_balances_within_one_source_class(preset: str) -> None:
    recipe = parse_recipe(PRESETS[preset], CLASSES)
    counts = class_counts(SEED_LABELS, 2)
    balanced = expand_to_parity(recipe, counts, CLASSES)
    expanded = np.array(_plan_counts(balanced))
    assert np.all(np.abs(expanded - expanded.max()) <= counts)
    for c in CLASSES:  # lists only grow, keeping the original entries first
        assert balanced.classes[c][: len(recipe.classes[c])] == tuple(recipe.classes[c])


def test_parity_rule_on_seed_split() -> None:
    counts = class_counts(SEED_LABELS, 2)
    targeted = parse_recipe(PRESETS["targeted"], CLASSES)
    # 1508 / 358 = 4.2 -> 4: targeted already is at parity.
    assert parity_multipliers(counts, targeted) == {"functional": 2, "defective": 4}
    flip = expand_to_parity(parse_recipe(PRESETS["flip"], CLASSES), counts, CLASSES)
    # No random transform in [identity, hflip]: repeat the list (oversampling).
    assert flip.classes["defective"] == ("identity", "hflip", "identity", "hflip")
    assert flip.name == "flip+parity"


def test_parity_cycles_random_transforms() -> None:
    recipe = parse_recipe({"classes": {"defective": AUGMENTING}}, CLASSES)
    balanced = expand_to_parity(recipe, np.array([700, 100]), CLASSES)
    assert balanced.classes["functional"] == ("identity",)
    assert balanced.classes["defective"] == (*AUGMENTING, "brightness", "clarity", "brightness")


def test_parity_needs_expand_mode() -> None:
    recipe = parse_recipe({"mode": "online"}, CLASSES)
    with pytest.raises(ValueError, match="needs an expand recipe"):
        parity_multipliers(np.array([3, 1]), recipe)


def test_every_registered_transform_is_parseable() -> None:
    recipe = parse_recipe({"classes": {"defective": list(TRANSFORMS)}}, CLASSES)
    assert len(recipe.classes["defective"]) == len(TRANSFORMS)
