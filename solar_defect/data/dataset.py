"""A dataset over the decode cache: whole batches by fancy indexing, augmentation per sample.

Batches are uint8 (B, 1, S, S); the model converts and normalises them, so the loader moves a
quarter of the bytes a float pipeline would and the same preprocessing lives in one place.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from solar_defect.data.recipes import Recipe, sample_image, sample_rng

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # images (B,1,S,S) u8, labels, indices


class CellDataset(Dataset):
    """Samples `i` = cache row `source_index[i]`, transformed by recipe slot `slots[i]`.

    Expanded samples store the recipe entry, never pixels: sample `i` is rendered with a generator
    seeded by (seed, i), so every epoch and every worker sees the same materialised image.
    Online recipes draw fresh transforms from torch's RNG, which Lightning seeds per worker.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        source_index: np.ndarray,
        class_names: list[str],
        slots: np.ndarray | None = None,
        recipe: Recipe | None = None,
        seed: int = 0,
    ) -> None:
        self.images = images
        self.labels = np.ascontiguousarray(labels, dtype=np.int64)
        self.source_index = np.asarray(source_index, dtype=np.int64)
        self.class_names = class_names
        self.slots = slots if slots is not None else np.zeros(len(self.source_index), np.int64)
        self.recipe = recipe
        self.seed = seed

    def __len__(self) -> int:
        return len(self.source_index)

    def __getitems__(self, indices: list[int]) -> Batch:
        """A whole collated batch; `collate_batch` passes it through unchanged."""
        rows = np.asarray(indices, dtype=np.int64)
        pixels = self.images[self.source_index[rows]]  # (B, S, S), a copy
        if self.recipe is not None:
            for k, i in enumerate(rows):
                pixels[k] = self._augment(self.recipe, pixels[k], int(i))
        return (
            torch.from_numpy(pixels).unsqueeze(1),
            torch.from_numpy(self.labels[rows]),
            torch.from_numpy(rows),
        )

    def __getitem__(self, index: int) -> Batch:
        images, labels, rows = self.__getitems__([index])
        return images[0], labels[0], rows[0]

    def _augment(self, recipe: Recipe, image: np.ndarray, i: int) -> np.ndarray:
        if recipe.mode == "expand":
            rng = sample_rng(self.seed, i)
        else:
            rng = np.random.default_rng(int(torch.randint(2**62, ()).item()))
        label = self.class_names[self.labels[i]]
        return sample_image(image, label, int(self.slots[i]), recipe, rng)


def collate_batch(batch: Batch) -> Batch:
    """`CellDataset.__getitems__` already returns a collated batch."""
    return batch
