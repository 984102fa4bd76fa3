"""A picture of what a recipe does: a few training cells per class, each transform applied.

Logged at fit start, so a researcher sees the augmentation before trusting its numbers.
"""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
from pytorch_lightning.loggers import TensorBoardLogger

from solar_defect.data.augment import apply_transform
from solar_defect.data.recipes import Recipe

GAP = 4  # pixels between tiles


def recipe_transforms(recipe: Recipe, class_name: str) -> list[str]:
    """The distinct transforms a class's recipe can apply, in recipe order."""
    return list(dict.fromkeys(["identity", *recipe.classes.get(class_name, ())]))


def augmentation_grid(
    images: np.ndarray,
    labels: np.ndarray,
    class_names: list[str],
    recipe: Recipe,
    per_class: int = 3,
    seed: int = 0,
) -> np.ndarray:
    """(H, W) uint8 mosaic: one row per sample (`per_class` per class), one column per transform.

    Rows of a class whose recipe has fewer transforms are padded with black tiles, so a
    targeted recipe shows at a glance which class is augmented and which is not.
    """
    rng = np.random.default_rng(seed)
    size = images.shape[-1]
    columns = max(len(recipe_transforms(recipe, c)) for c in class_names)
    rows = []
    for label, name in enumerate(class_names):
        members = np.flatnonzero(labels == label)
        chosen = rng.choice(members, size=min(per_class, len(members)), replace=False)
        for index in chosen:
            tiles = [
                apply_transform(t, images[index], rng, recipe.params_for(name, t))
                for t in recipe_transforms(recipe, name)
            ]
            tiles += [np.zeros((size, size), np.uint8)] * (columns - len(tiles))
            rows.append(_join(tiles, axis=1))
    return _join(rows, axis=0)


def _join(tiles: list[np.ndarray], axis: int) -> np.ndarray:
    gap_shape = list(tiles[0].shape)
    gap_shape[axis] = GAP
    gap = np.full(gap_shape, 255, np.uint8)
    parts = [part for tile in tiles for part in (tile, gap)][:-1]
    return np.concatenate(parts, axis=axis)


class AugmentationGridCallback(pl.Callback):
    """Logs `train/augmentation_grid` to TensorBoard when fitting starts (rank 0)."""

    def __init__(self, per_class: int = 3) -> None:
        self.per_class = per_class

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loggers = [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
        datamodule = trainer.datamodule
        if not loggers or not trainer.is_global_zero or datamodule.recipe is None:
            return
        rows = datamodule.splits["train"]
        grid = augmentation_grid(
            datamodule.decoded.images[rows],
            datamodule.cells.labels[rows],
            datamodule.class_names,
            datamodule.recipe,
            self.per_class,
            datamodule.seed,
        )
        caption = " | ".join(
            f"{c}: {', '.join(recipe_transforms(datamodule.recipe, c))}"
            for c in datamodule.class_names
        )
        for logger in loggers:
            logger.experiment.add_image("train/augmentation_grid", grid[None], 0)
            logger.experiment.add_text("train/augmentation_recipe", caption, 0)
