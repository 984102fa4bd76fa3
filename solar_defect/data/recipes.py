"""Per-class augmentation recipes and class balancing, as pure numpy logic.

A recipe names, per class, the transforms of :mod:`solar_defect.data.augment` to apply:

* ``expand``: each training image of class c is materialised once per entry of the class's
  list, so counts multiply deterministically (the seed's offline augmentation). Only
  (source index, slot) pairs are stored; pixels are made on demand from a per-sample generator.
* ``online``: each image appears once; each time it is drawn, every transform of its class is
  applied independently with its probability.

The Dataset calls :func:`expansion_plan` once and :func:`sample_image` per item.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import cycle, islice
from numbers import Real
from typing import Any, Literal

import numpy as np

from solar_defect.data.augment import (
    DEFAULT_PARAMS,
    PARAM_KINDS,
    RANDOM_TRANSFORMS,
    TRANSFORMS,
    apply_transform,
)
from solar_defect.errors import UserInputError

Mode = Literal["expand", "online"]
MODES: tuple[str, ...] = ("expand", "online")
_CONFIG_KEYS = ("name", "mode", "classes", "params", "class_params")


@dataclass(frozen=True)
class Recipe:
    """A validated augmentation recipe; build it with :func:`parse_recipe`.

    Attributes:
        mode: ``"expand"`` or ``"online"``.
        classes: Per class name, in ``expand`` mode the sequence of transform names (one
            materialised sample each), in ``online`` mode a mapping transform name ->
            probability, kept in ``TRANSFORMS`` order so the application order is fixed.
        params: Per parametrised transform, its parameters merged over ``DEFAULT_PARAMS``.
        name: Label for logs and comparison tables.
        class_params: Per class, per transform, parameters merged over ``params``: one class
            can darken while another brightens (what a guided recipe needs).
    """

    mode: Mode
    classes: dict[str, Sequence[str]] | dict[str, dict[str, float]]
    params: dict[str, dict[str, Any]]
    name: str = "custom"
    class_params: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def params_for(self, class_name: str, transform: str) -> dict[str, Any] | None:
        """The parameters ``transform`` takes for images of ``class_name``."""
        return self.class_params.get(class_name, {}).get(transform) or self.params.get(transform)


def _is_number(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _is_sequence(value: object) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str)


def _known(names: Sequence[str]) -> str:
    return ", ".join(names)


def _check_transform(prefix: str, name: object, where: str) -> str:
    if not isinstance(name, str) or name not in TRANSFORMS:
        raise UserInputError(
            f"{prefix}unknown transform {name!r} {where}; use one of: {_known(list(TRANSFORMS))}"
        )
    return name


def _check_probability(prefix: str, value: object, where: str) -> float:
    if not _is_number(value) or not 0.0 <= float(value) <= 1.0:
        raise UserInputError(f"{prefix}probability {value!r} {where} must be a number in [0, 1]")
    return float(value)


def _parse_expand_classes(
    prefix: str, classes: Mapping[str, Any], class_names: Sequence[str]
) -> dict[str, tuple[str, ...]]:
    parsed = {}
    for cls in class_names:
        entries = classes.get(cls, ["identity"])
        if not _is_sequence(entries) or len(entries) == 0:
            raise UserInputError(
                f"{prefix}class {cls!r} needs a non-empty list of transforms in expand mode, "
                f"got {entries!r}; e.g. [identity, hflip]"
            )
        parsed[cls] = tuple(_check_transform(prefix, t, f"for class {cls!r}") for t in entries)
    return parsed


def _parse_online_classes(
    prefix: str, classes: Mapping[str, Any], class_names: Sequence[str]
) -> dict[str, dict[str, float]]:
    parsed = {}
    for cls in class_names:
        probs = classes.get(cls, {})
        if not isinstance(probs, Mapping):
            raise UserInputError(
                f"{prefix}class {cls!r} needs a mapping transform -> probability in online mode, "
                f"got {probs!r}; e.g. {{hflip: 0.5, brightness: 0.5}}"
            )
        for t, p in probs.items():
            _check_transform(prefix, t, f"for class {cls!r}")
            _check_probability(prefix, p, f"of {t!r} for class {cls!r}")
        # TRANSFORMS order, not config order, so equal recipes apply transforms identically.
        parsed[cls] = {t: float(probs[t]) for t in TRANSFORMS if t in probs}
    return parsed


def _parse_value(prefix: str, transform: str, param: str, value: object) -> Any:
    where = f"for {transform}.{param}"
    kind = PARAM_KINDS[transform][param]
    if kind == "probability":
        return _check_probability(prefix, value, where)
    if not (_is_sequence(value) and len(value) == 2 and all(_is_number(v) for v in value)):
        raise UserInputError(
            f"{prefix}{where} expects a range [low, high] of numbers, got {value!r}"
        )
    low, high = float(value[0]), float(value[1])
    if low > high:
        raise UserInputError(
            f"{prefix}{where} has low > high in {value!r}; write it as [low, high]"
        )
    if kind == "positive" and low <= 0:
        raise UserInputError(f"{prefix}{where} must be positive, got {value!r}; use values > 0")
    if kind == "non_negative" and low < 0:
        raise UserInputError(
            f"{prefix}{where} must not be negative, got {value!r}; use values >= 0"
        )
    return (low, high)


def _parse_params(
    prefix: str,
    params: Mapping[str, Any],
    base: Mapping[str, Mapping[str, Any]] = DEFAULT_PARAMS,
    where: str = "params",
) -> dict[str, dict[str, Any]]:
    merged = {t: dict(p) for t, p in base.items()}
    for transform, values in params.items():
        _check_transform(prefix, transform, f"in {where}")
        known = PARAM_KINDS.get(transform, {})
        if not isinstance(values, Mapping):
            raise UserInputError(
                f"{prefix}{where}.{transform} must be a mapping of parameter -> value, "
                f"got {values!r}"
            )
        for param, value in values.items():
            if param not in known:
                hint = f"use one of: {_known(list(known))}" if known else "it takes none"
                raise UserInputError(
                    f"{prefix}unknown parameter {param!r} for transform {transform!r}; {hint}"
                )
            merged[transform][param] = _parse_value(prefix, transform, param, value)
    return merged


def parse_recipe(cfg: Mapping[str, Any], class_names: Sequence[str]) -> Recipe:
    """Validate a recipe config (``name``, ``mode``, ``classes``, ``params``) into a Recipe.

    Classes missing from ``classes`` get ``[identity]`` (expand) or no transforms (online), so
    the returned recipe names every class, in ``class_names`` order.

    Raises:
        UserInputError: (a ValueError) One line saying what is wrong and how to fix it: an
            unknown key, mode, class, transform or parameter; a probability outside [0, 1]; a
            range that is not [low, high] with low <= high; a value below its bound (gamma and
            blur sigma must be > 0, others >= 0).
    """
    name = str(cfg.get("name", "custom"))
    prefix = f"augmentation recipe {name!r}: "
    unknown_keys = [k for k in cfg if k not in _CONFIG_KEYS]
    if unknown_keys:
        raise UserInputError(
            f"{prefix}unknown key(s) {unknown_keys}; a recipe has only: {_known(_CONFIG_KEYS)}"
        )
    mode = cfg.get("mode", "expand")
    if mode not in MODES:
        raise UserInputError(f"{prefix}unknown mode {mode!r}; use one of: {_known(MODES)}")
    classes = cfg.get("classes") or {}
    _check_class_mapping(prefix, "classes", classes, "class name -> transforms", class_names)
    if mode == "expand":
        parsed: Any = _parse_expand_classes(prefix, classes, class_names)
    else:
        parsed = _parse_online_classes(prefix, classes, class_names)
    params = _parse_params(prefix, cfg.get("params") or {})
    class_params = _parse_class_params(prefix, cfg.get("class_params") or {}, params, class_names)
    return Recipe(mode=mode, classes=parsed, params=params, name=name, class_params=class_params)


def _parse_class_params(
    prefix: str,
    class_params: Mapping[str, Any],
    params: Mapping[str, Mapping[str, Any]],
    class_names: Sequence[str],
) -> dict[str, dict[str, dict[str, Any]]]:
    _check_class_mapping(
        prefix, "class_params", class_params, "class -> transform -> params", class_names
    )
    parsed = {}
    for cls, per_transform in class_params.items():
        if not isinstance(per_transform, Mapping):
            raise UserInputError(
                f"{prefix}class_params.{cls} must be a mapping transform -> parameters"
            )
        merged = _parse_params(prefix, per_transform, params, f"class_params.{cls}")
        parsed[cls] = {t: merged[t] for t in per_transform}
    return parsed


def _check_class_mapping(
    prefix: str, key: str, value: Any, layout: str, class_names: Sequence[str]
) -> None:
    """`value` (the recipe's `key`) maps only the data's classes to something."""
    if not isinstance(value, Mapping):
        raise UserInputError(f"{prefix}{key} must be a mapping {layout}")
    unknown = [c for c in value if c not in class_names]
    if unknown:
        raise UserInputError(
            f"{prefix}{key} names unknown class(es) {unknown}; the data's classes are: "
            f"{_known(list(class_names))}"
        )


def _class_of(recipe: Recipe, class_name: str) -> Any:
    if class_name not in recipe.classes:
        raise ValueError(
            f"recipe {recipe.name!r} has no entry for class {class_name!r} (it has "
            f"{_known(list(recipe.classes))}); build it with parse_recipe and the data's classes"
        )
    return recipe.classes[class_name]


def expansion_plan(
    labels: np.ndarray, recipe: Recipe, class_names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """List the materialised training samples as (source index, transform slot) pairs.

    In expand mode image ``i`` of class ``c`` appears ``len(recipe.classes[c])`` times, with
    slots ``0, 1, ...``; in online mode each image appears once with slot 0. Only indices are
    stored, so the plan costs 16 bytes a sample whatever the image size.

    Args:
        labels: Class index per training image, shape (N,).
        recipe: The recipe.
        class_names: Class names by index.

    Returns:
        ``(source_index, slot)``, two int64 arrays of equal length, grouped by source image.
    """
    labels = np.asarray(labels, dtype=np.int64)
    _check_labels(labels, len(class_names))
    if recipe.mode == "online":
        return np.arange(len(labels), dtype=np.int64), np.zeros(len(labels), dtype=np.int64)
    per_class = np.array([len(_class_of(recipe, c)) for c in class_names], dtype=np.int64)
    repeats = per_class[labels]
    source = np.repeat(np.arange(len(labels), dtype=np.int64), repeats)
    starts = np.cumsum(repeats) - repeats  # first plan position of each source image
    slot = np.arange(len(source), dtype=np.int64) - np.repeat(starts, repeats)
    return source, slot


def sample_image(
    image: np.ndarray,
    label_name: str,
    slot: int,
    recipe: Recipe,
    rng: np.random.Generator,
) -> np.ndarray:
    """Make one training sample from a source image; the input is never modified.

    Expand mode applies ``recipe.classes[label_name][slot]``. Online mode draws one uniform
    number per listed transform (so generator use does not depend on the outcome) and applies
    each transform whose draw falls under its probability, in the recipe's fixed order.
    """
    entries = _class_of(recipe, label_name)
    if recipe.mode == "expand":
        name = entries[slot]
        return apply_transform(name, image, rng, recipe.params_for(label_name, name))
    out = image
    for name, prob in entries.items():
        if rng.random() < prob:
            out = apply_transform(name, out, rng, recipe.params_for(label_name, name))
    return out.copy() if out is image else out


def sample_rng(seed: int, sample_index: int, epoch: int | None = None) -> np.random.Generator:
    """Generator for one sample, independent of worker count and visiting order.

    Expand mode uses ``(seed, sample_index)`` so a seed always materialises the same pixels.
    Online mode can pass ``epoch`` to get fresh, still reproducible, draws each epoch.
    """
    key = [seed, sample_index] if epoch is None else [seed, sample_index, epoch]
    if any(k < 0 for k in key):
        raise ValueError(f"sample_rng needs non-negative seed, index and epoch, got {key}")
    return np.random.default_rng(key)


def _check_labels(labels: np.ndarray, num_classes: int) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise UserInputError(
            f"labels must lie in [0, {num_classes - 1}] for {num_classes} classes, got values "
            f"from {labels.min()} to {labels.max()}; check class_names against the data"
        )


def class_counts(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Number of images per class index, shape (num_classes,), int64."""
    labels = np.asarray(labels, dtype=np.int64)
    _check_labels(labels, num_classes)
    return np.bincount(labels, minlength=num_classes)


def _check_nonzero(counts: np.ndarray, class_names: Sequence[str] | None = None) -> None:
    empty = np.flatnonzero(counts <= 0)
    if empty.size:
        names = [class_names[i] for i in empty] if class_names is not None else empty.tolist()
        raise UserInputError(
            f"class(es) {names} have no training images, so they cannot be balanced; "
            "add images for them or drop them from the class names"
        )


def inverse_frequency_weights(counts: np.ndarray) -> np.ndarray:
    """Cross-entropy class weights ``N / (K * n_c)``: 1 for every class when balanced."""
    counts = np.asarray(counts, dtype=np.float64)
    _check_nonzero(counts)
    return counts.sum() / (len(counts) * counts)


def sampler_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Per-sample weights ``1 / n_label`` for a WeightedRandomSampler, so classes draw equally.

    Pass the labels of the samples the Dataset serves (after expansion), not of the sources.
    """
    labels = np.asarray(labels, dtype=np.int64)
    counts = class_counts(labels, num_classes)
    _check_nonzero(counts)
    return 1.0 / counts[labels].astype(np.float64)


def parity_multipliers(
    counts: np.ndarray, recipe: Recipe, class_names: Sequence[str] | None = None
) -> dict[str, int]:
    """Expand-list length per class that brings every class to about the largest class.

    Rule: with ``n_c`` source images and list length ``L_c``, the target is
    ``T = max_c n_c * L_c`` and ``m_c = max(L_c, floor(T / n_c + 0.5))``. Rounding to the
    nearest whole multiplier puts each class within ``n_c / 2`` of ``T``, and the largest class
    keeps its list, so no class shrinks.

    Args:
        counts: Source images per class index.
        recipe: An expand recipe.
        class_names: Class names by index; defaults to the recipe's class order.

    Raises:
        UserInputError: (a ValueError) The recipe is not in expand mode, or a class has no images.
    """
    if recipe.mode != "expand":
        raise UserInputError(
            f"expand_to_parity needs an expand recipe, but {recipe.name!r} is online; "
            "use balance=sampler or balance=loss_weights with online recipes"
        )
    names = list(recipe.classes) if class_names is None else list(class_names)
    counts = np.asarray(counts, dtype=np.int64)
    if len(counts) != len(names):
        raise UserInputError(f"got {len(counts)} class counts for {len(names)} classes {names}")
    _check_nonzero(counts, names)
    lengths = np.array([len(_class_of(recipe, c)) for c in names], dtype=np.int64)
    target = int((counts * lengths).max())
    return {
        c: max(int(length), math.floor(target / int(n) + 0.5))
        for c, n, length in zip(names, counts, lengths, strict=True)
    }


def expand_to_parity(recipe: Recipe, counts: np.ndarray, class_names: Sequence[str]) -> Recipe:
    """Lengthen each class's expand list to its parity multiplier (see parity_multipliers).

    New entries cycle through the class's random transforms in list order, e.g. ``[identity,
    hflip, brightness, clarity]`` grows by ``brightness, clarity, brightness, ...``; each repeat
    gives new pixels because every sample has its own generator. A list without a random
    transform is repeated whole, which is plain oversampling.
    """
    multipliers = parity_multipliers(counts, recipe, class_names)
    classes = {}
    for c, entries in recipe.classes.items():
        entries = tuple(entries)
        extra = multipliers.get(c, len(entries)) - len(entries)
        pool = [t for t in entries if t in RANDOM_TRANSFORMS] or list(entries)
        classes[c] = entries + tuple(islice(cycle(pool), extra))
    return replace(recipe, classes=classes, name=f"{recipe.name}+parity")
