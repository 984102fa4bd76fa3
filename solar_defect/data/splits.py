"""Seeded splits stratified by (label, cell type).

Per stratum the training split takes ceil(n * train_fraction) cells, the test split
round(n * test_fraction), validation the rest. On ELPV's seed protocol with train_fraction 0.5
this gives exactly 754/358 train and 754/357 validation, the seed's split sizes.
"""

from __future__ import annotations

import math

import numpy as np

from solar_defect.errors import UserInputError

SPLITS = ("train", "val", "test")


def _strata(labels: np.ndarray, types: list[str]) -> list[np.ndarray]:
    keys = [f"{label}|{kind}" for label, kind in zip(labels, types, strict=True)]
    return [np.flatnonzero(np.array(keys) == key) for key in sorted(set(keys))]


def stratified_split(
    labels: np.ndarray,
    types: list[str],
    train_fraction: float,
    test_fraction: float = 0.0,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Indices of each split, sorted; each stratum is shuffled with its own seeded generator."""
    if not 0.0 < train_fraction < 1.0:
        raise UserInputError(f"data.train_fraction must be in (0, 1), got {train_fraction}")
    if not 0.0 <= test_fraction < 1.0 or train_fraction + test_fraction >= 1.0:
        raise UserInputError(
            f"data.test_fraction {test_fraction} with train_fraction {train_fraction} leaves no "
            "validation data: keep train_fraction + test_fraction < 1"
        )
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in SPLITS}
    for stratum in _strata(labels, types):
        shuffled = rng.permutation(stratum)
        n_train = math.ceil(len(stratum) * train_fraction)
        n_test = round(len(stratum) * test_fraction)
        parts["train"].append(shuffled[:n_train])
        parts["test"].append(shuffled[n_train : n_train + n_test])
        parts["val"].append(shuffled[n_train + n_test :])
    return _finish(parts)


def kfold_split(
    labels: np.ndarray, types: list[str], num_folds: int, fold: int, seed: int = 0
) -> dict[str, np.ndarray]:
    """Fold `fold` of a stratified k-fold: that fold validates, the others train."""
    if num_folds < 2 or not 0 <= fold < num_folds:
        raise UserInputError(
            f"data.fold must be in [0, {num_folds}) and data.num_folds >= 2, "
            f"got fold={fold}, num_folds={num_folds}"
        )
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in SPLITS}
    for stratum in _strata(labels, types):
        shuffled = rng.permutation(stratum)
        in_fold = np.arange(len(shuffled)) % num_folds == fold
        parts["val"].append(shuffled[in_fold])
        parts["train"].append(shuffled[~in_fold])
    return _finish(parts)


def _finish(parts: dict[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
    splits = {
        name: np.sort(np.concatenate(chunks)) if chunks else np.empty(0, dtype=np.int64)
        for name, chunks in parts.items()
    }
    for name in ("train", "val"):
        if len(splits[name]) == 0:
            raise UserInputError(
                f"the {name} split is empty: add images or change data.train_fraction"
            )
    return splits
