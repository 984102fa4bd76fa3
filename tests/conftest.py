"""Shared fixtures: a tiny synthetic EL data set and composed Hydra configs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from solar_defect.cli import CONFIG_DIR

CLASSES = ("functional", "defective")
PER_CLASS = 16
SIZE = 48
SOLAR_TRAIN = str(Path(sys.executable).parent / "solar-train")


def synthetic_cell(rng: np.random.Generator, defective: bool, brightness: float, blur: float):
    """A gray cell: busbars on a textured background; defective cells carry a dark crack."""
    image = np.full((SIZE, SIZE), 255 * brightness, np.float64)
    image += rng.normal(0, 12, image.shape)
    image[:, SIZE // 3] *= 0.4  # busbars
    image[:, 2 * SIZE // 3] *= 0.4
    if defective:
        rows = np.arange(SIZE)
        cols = np.clip(rows // 2 + rng.integers(0, SIZE // 2), 0, SIZE - 1)
        image[rows, cols] *= 0.1
        image[rows[1:], cols[1:] - 1] *= 0.2
    if blur > 0:
        image = cv2.GaussianBlur(image, (0, 0), blur)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_synthetic_dataset(root: Path, per_class: int = PER_CLASS, seed: int = 0) -> Path:
    """`root/<class>/cell_NN.png`, varied in brightness and blur."""
    rng = np.random.default_rng(seed)
    for label, name in enumerate(CLASSES):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            brightness = 0.3 + 0.5 * i / per_class
            blur = (i % 4) * 0.7
            image = synthetic_cell(rng, bool(label), brightness, blur)
            cv2.imwrite(str(folder / f"cell_{i:02d}.png"), image)
    return root


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only-by-convention tiny class-folder data set (tests copy it to change it)."""
    return write_synthetic_dataset(tmp_path_factory.mktemp("synthetic_el"))


@pytest.fixture
def tiny_overrides(synthetic_root: Path, tmp_path: Path) -> list[str]:
    """Overrides that make any training config a seconds-long CPU run on the synthetic data."""
    return tiny_run_overrides(synthetic_root, tmp_path)


def tiny_run_overrides(data_root: Path, run_dir: Path) -> list[str]:
    return [
        "data=folder",
        f"data.root={data_root}",
        "data.image_size=32",
        "data.batch_size=8",
        "data.train_fraction=0.5",
        "model=resnet18",
        "trainer=cpu",
        "trainer.max_epochs=1",
        "trainer.num_sanity_val_steps=0",
        "trainer.enable_progress_bar=false",
        "callbacks.rich_progress_bar=null",
        f"paths.cache_dir={run_dir / 'cache'}",
        f"hydra.run.dir={run_dir / 'run'}",
    ]


def compose_as_cli(overrides: list[str], cwd: Path, config_name: str = "train") -> DictConfig:
    """Compose a primary config as the CLI would, with the Hydra run config set."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
    GlobalHydra.instance().clear()
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = cfg.hydra.run.dir
        cfg.hydra.runtime.cwd = str(cwd)
    HydraConfig.instance().set_config(cfg)
    return cfg


@pytest.fixture
def compose_config(tmp_path: Path) -> Callable[..., DictConfig]:
    """`compose_as_cli` in this test's temporary directory."""

    def _compose(overrides: list[str], config_name: str = "train") -> DictConfig:
        return compose_as_cli(overrides, tmp_path, config_name)

    return _compose


@pytest.fixture(scope="session")
def tiny_checkpoint(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Best checkpoint of a two-epoch 32 px run on the synthetic set (its run dir beside it).

    Shared by tests that only read it (predict, export), so the suite trains it once.
    """
    from solar_defect.train import train

    run_dir = tmp_path_factory.mktemp("tiny_train")
    overrides = [*tiny_run_overrides(synthetic_root, run_dir), "trainer.max_epochs=2"]
    return Path(train(compose_as_cli(overrides, run_dir))["best_checkpoint"])


def run_cli(args: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run a console script as a user would; output captured as text."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
