"""`ELDataModule`: EL cells from file to batch, with class-targeted augmentation and balancing."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, Sampler, WeightedRandomSampler

from solar_defect.data import cache, guided, recipes
from solar_defect.data.dataset import CellDataset, collate_batch
from solar_defect.data.protocols import BINARY_CLASSES, LabelledCells, apply_protocol
from solar_defect.data.sources import read_source
from solar_defect.data.splits import kfold_split, stratified_split
from solar_defect.errors import UserInputError

log = logging.getLogger(__name__)

BALANCE_METHODS = ("none", "sampler", "loss_weights", "expand_to_parity")


@dataclass(frozen=True)
class EvalSet:
    """What the analysis needs about an evaluated split, row for row with its dataset."""

    root: Path
    rel_paths: list[str]
    labels: np.ndarray  # (N,) class indices
    features: dict[str, np.ndarray]  # name -> (N,) on the original images
    class_names: list[str]


class ELDataModule(pl.LightningDataModule):
    """Reads a source, applies the label protocol, splits, caches and serves batches.

    Args:
        source: `elpv` (the installed package), `folder` or `csv`.
        root: data root for `folder` (and optional base folder for `csv` paths).
        csv_path: the labels CSV for `csv`.
        class_names: class folder / label names for named-class sources.
        protocol: `seed`, `threshold` or `four_class` for probability labels.
        image_size: side in pixels every image is resized to.
        augmentation: a recipe mapping (see `solar_defect.data.recipes.parse_recipe`).
        balance: `none`, `sampler`, `loss_weights` or `expand_to_parity`.
        num_folds: when set, `fold` of a stratified k-fold replaces the fraction split.
        on_bad_image: `error` stops at the first unreadable file, `skip` leaves it out.
        cache_dir: where decoded arrays persist between runs (None: memory only).
    """

    def __init__(
        self,
        source: str = "elpv",
        root: str | None = None,
        csv_path: str | None = None,
        class_names: list[str] | None = None,
        protocol: str = "seed",
        image_size: int = 224,
        batch_size: int = 32,
        num_workers: int = 0,
        train_fraction: float = 0.5,
        test_fraction: float = 0.0,
        num_folds: int | None = None,
        fold: int = 0,
        seed: int = 0,
        augmentation: Mapping[str, Any] | None = None,
        balance: str = "none",
        on_bad_image: str = "error",
        cache_dir: str | None = None,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        if balance not in BALANCE_METHODS:
            raise UserInputError(f"unknown balance {balance!r}: use one of {list(BALANCE_METHODS)}")
        if on_bad_image not in cache.BAD_IMAGE_POLICIES:  # checked here too: a cache hit skips it
            raise UserInputError(
                f"data.on_bad_image must be one of {list(cache.BAD_IMAGE_POLICIES)}, "
                f"got {on_bad_image!r}"
            )
        if image_size < 16 or batch_size < 1 or num_workers < 0:
            raise UserInputError(
                "data.image_size must be >= 16, data.batch_size >= 1 and data.num_workers >= 0, "
                f"got {image_size}, {batch_size}, {num_workers}"
            )
        self.source, self.root, self.csv_path = source, root, csv_path
        self.protocol = protocol
        self.image_size, self.batch_size, self.num_workers = image_size, batch_size, num_workers
        self.train_fraction, self.test_fraction = train_fraction, test_fraction
        self.num_folds, self.fold, self.seed = num_folds, fold, seed
        self.augmentation = _plain(augmentation) or {"name": "none", "mode": "expand"}
        self.balance, self.on_bad_image = balance, on_bad_image
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.pin_memory = pin_memory
        self._class_names_config = list(class_names or BINARY_CLASSES)
        self.cells: LabelledCells | None = None
        self.decoded: cache.DecodedCells | None = None
        self.cache_hit = False
        self.splits: dict[str, np.ndarray] = {}
        self.recipe: recipes.Recipe | None = None
        self.guided_recipe_yaml = ""  # set by augmentation=guided, written by solar-train
        self.datasets: dict[str, CellDataset] = {}
        self._generator: torch.Generator | None = None  # the weighted sampler's
        self._generator_state: torch.Tensor | None = None

    # -- loading -------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Build the decode cache once (rank 0); the other ranks then load it in `setup`."""
        self._load()

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        cells, decoded = self._load()
        usable = np.ones(len(cells.labels), dtype=bool)
        usable[decoded.bad] = False
        if decoded.bad:
            log.warning(
                "Skipping %d unreadable image(s): %s",
                len(decoded.bad),
                ", ".join(self.skipped_paths[:5]),
            )
        self.splits = self._split(np.flatnonzero(usable))
        self.recipe = self._recipe()
        for name, rows in self.splits.items():
            if len(rows):
                self.datasets[name] = self._dataset(name, rows, self.recipe)

    def _load(self) -> tuple[LabelledCells, cache.DecodedCells]:
        """Read, label and decode once per instance."""
        if self.cells is None or self.decoded is None:
            table = read_source(self.source, self.root, self.csv_path, self._class_names_config)
            self.cells = apply_protocol(table, self.protocol, self._class_names_config)
            self.decoded, self.cache_hit = cache.load_or_build(
                self.cells.table.paths, self.image_size, self.cache_dir, self.on_bad_image
            )
        return self.cells, self.decoded

    def _split(self, usable: np.ndarray) -> dict[str, np.ndarray]:
        cells, _ = self._load()
        labels = cells.labels[usable]
        types = [cells.table.types[i] for i in usable]
        if self.num_folds:
            local = kfold_split(labels, types, self.num_folds, self.fold, self.seed)
        else:
            local = stratified_split(
                labels, types, self.train_fraction, self.test_fraction, self.seed
            )
        splits = {name: usable[rows] for name, rows in local.items()}
        for name in ("train", "val"):
            empty = [c for c, n in cells.counts(splits[name]).items() if n == 0]
            if empty:
                raise UserInputError(
                    f"class(es) {empty} have no images in the {name} split: add images of that "
                    "class or change data.train_fraction"
                )
        return splits

    def _recipe(self) -> recipes.Recipe:
        config = self.augmentation
        if config.get("mode") == "guided":
            config = self._guided_recipe(config)
        recipe = recipes.parse_recipe(config, self.class_names)
        if self.balance == "expand_to_parity":
            cells, _ = self._load()
            counts = np.bincount(cells.labels[self.splits["train"]], minlength=self.num_classes)
            recipe = recipes.expand_to_parity(recipe, counts, self.class_names)
        return recipe

    def _guided_recipe(self, config: dict[str, Any]) -> dict[str, Any]:
        """Derive the recipe from a sensitivity report; keep its YAML for the run directory."""
        guided.check_guided_config(config)
        report = guided.load_report(config["report"])
        cells, decoded = self._load()
        rows = self.splits["train"]
        recipe, findings = guided.derive_recipe(
            config, report, decoded.images[rows], cells.labels[rows], self.class_names, self.seed
        )
        self.guided_recipe_yaml = guided.recipe_yaml(recipe, findings, str(config["report"]))
        return recipe

    def _dataset(self, split: str, rows: np.ndarray, recipe: recipes.Recipe) -> CellDataset:
        cells, decoded = self._load()
        labels = cells.labels[rows]
        if split != "train":  # validation and test data are never augmented
            return CellDataset(decoded.images, labels, rows, self.class_names)
        source, slots = recipes.expansion_plan(labels, recipe, self.class_names)
        return CellDataset(
            decoded.images,
            labels[source],
            rows[source],
            self.class_names,
            slots=slots,
            recipe=recipe,
            seed=self.seed,
        )

    # -- what other parts read -------------------------------------------------------------------
    @property
    def class_names(self) -> list[str]:
        if self.cells is None:
            raise RuntimeError("call setup() before reading class_names")
        return self.cells.class_names

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def skipped_paths(self) -> list[str]:
        if self.cells is None or self.decoded is None:
            return []
        return [self.cells.table.rel_paths[i] for i in self.decoded.bad]

    def counts(self, split: str) -> dict[str, int]:
        """Images per class in a split, after augmentation expansion for `train`."""
        dataset = self.datasets.get(split)
        labels = dataset.labels if dataset is not None else np.empty(0, dtype=np.int64)
        counts = np.bincount(labels, minlength=self.num_classes)
        return {name: int(n) for name, n in zip(self.class_names, counts, strict=True)}

    def loss_weights(self) -> list[float] | None:
        """Inverse-frequency class weights for `balance=loss_weights`, else None."""
        if self.balance != "loss_weights":
            return None
        counts = np.array(list(self.counts("train").values()))
        return [float(w) for w in recipes.inverse_frequency_weights(counts)]

    def eval_set(self, split: str) -> EvalSet:
        """Paths, labels and cached features of a split, row for row with its loader."""
        cells, decoded = self._load()
        rows = self.splits[split]
        return EvalSet(
            root=cells.table.root,
            rel_paths=[cells.table.rel_paths[i] for i in rows],
            labels=cells.labels[rows],
            features={name: values[rows] for name, values in decoded.features.items()},
            class_names=self.class_names,
        )

    # -- loaders ---------------------------------------------------------------------------------
    def train_dataloader(self) -> DataLoader:
        dataset = self.datasets["train"]
        sampler: Sampler | None = None
        if self.balance == "sampler":
            weights = recipes.sampler_weights(dataset.labels, self.num_classes)
            sampler = WeightedRandomSampler(
                torch.as_tensor(weights, dtype=torch.double),
                len(dataset),
                generator=self._sampler_generator(),
            )
        return self._loader(dataset, shuffle=sampler is None, sampler=sampler)

    def _sampler_generator(self) -> torch.Generator:
        """One generator per run, seeded by `seed`, continued from a checkpoint on resume."""
        if self._generator is None:
            self._generator = torch.Generator().manual_seed(self.seed)
            if self._generator_state is not None:
                self._generator.set_state(self._generator_state)
        return self._generator

    def state_dict(self) -> dict[str, Any]:
        """Saved in checkpoints: a resumed run then draws the batches the stopped one would have."""
        if self._generator is None:
            return {}
        return {"sampler_generator": self._generator.get_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._generator_state = state_dict.get("sampler_generator")

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.datasets["val"])

    def test_dataloader(self) -> DataLoader:
        if "test" not in self.datasets:
            raise UserInputError("no test split: set data.test_fraction > 0 to make one")
        return self._loader(self.datasets["test"])

    def _loader(
        self, dataset: CellDataset, shuffle: bool = False, sampler: Sampler | None = None
    ) -> DataLoader:
        if not shuffle and sampler is None and _world_size(self.trainer) > 1:
            # Each evaluated sample exactly once across ranks (no DistributedSampler padding),
            # so metrics and sensitivity reports equal the single-process ones.
            from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler

            sampler = UnrepeatedDistributedSampler(dataset, shuffle=False)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=collate_batch,
            pin_memory=self.pin_memory,
            # Online augmentation draws from each worker's RNG, which Lightning seeds when the
            # worker starts: fresh workers per epoch make those draws a function of the main
            # process's RNG, which a checkpoint restores, so a resumed run augments identically.
            persistent_workers=self.num_workers > 0 and not _draws_online(dataset),
        )


def _draws_online(dataset: CellDataset) -> bool:
    return dataset.recipe is not None and dataset.recipe.mode == "online"


def _world_size(trainer: pl.Trainer | None) -> int:
    return trainer.world_size if trainer is not None else 1


def _plain(config: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if isinstance(config, DictConfig):
        return OmegaConf.to_container(config, resolve=True)  # type: ignore[return-value]
    return dict(config) if config is not None else None
