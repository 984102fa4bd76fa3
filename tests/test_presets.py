"""The seed's augmentation presets give the seed's training counts on the real ELPV split."""

from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from solar_defect.cli import CONFIG_DIR
from solar_defect.data.protocols import apply_protocol
from solar_defect.data.recipes import expansion_plan, parse_recipe
from solar_defect.data.sources import read_elpv
from solar_defect.data.splits import stratified_split


@pytest.mark.parametrize(
    ("preset", "functional", "defective"),
    [
        ("none", 754, 358),
        ("flip", 1508, 716),
        ("all_classes", 3016, 1432),
        ("targeted", 1508, 1432),
    ],
)
def test_preset_counts_on_the_real_seed_split(preset, functional, defective):
    cells = apply_protocol(read_elpv(), "seed")
    train = stratified_split(cells.labels, cells.table.types, 0.5, seed=42)["train"]
    config = OmegaConf.load(Path(CONFIG_DIR) / "augmentation" / f"{preset}.yaml")
    recipe = parse_recipe(OmegaConf.to_container(config), cells.class_names)
    source, _ = expansion_plan(cells.labels[train], recipe, cells.class_names)
    counts = np.bincount(cells.labels[train][source], minlength=2)
    assert counts.tolist() == [functional, defective]
