"""The run directory: where a run's files go, and the files every command writes there."""

from __future__ import annotations

import json
import math
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from solar_defect.analysis.tables import seed_table
from solar_defect.errors import UserInputError


def check_writable(output_dir: Path) -> None:
    """Fail before any work when the run directory cannot be written."""
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        # per process: under torchrun or SLURM every rank runs this in the same directory
        probe = output_dir / f".write_test.{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise UserInputError(
            f"cannot write to the run directory {output_dir} ({err.strerror}): "
            "choose another with hydra.run.dir=DIR"
        ) from err


def last_checkpoint_path(output_dir: Path) -> Path:
    """Where a run keeps its full training state (conf/callbacks/last_checkpoint.yaml)."""
    return output_dir / "checkpoints" / "last.ckpt"


def resolve_ckpt_path(ckpt_path: str | None, output_dir: Path) -> str | None:
    """`last` means this run directory's `checkpoints/last.ckpt`; a path must be a checkpoint."""
    if not ckpt_path:
        return None
    path = last_checkpoint_path(output_dir) if ckpt_path == "last" else Path(ckpt_path)
    load_checkpoint(path)
    return str(path)


def load_checkpoint(path: Path) -> Mapping[str, Any]:
    """A Lightning checkpoint's dict (tensors memory-mapped), or one clear error."""
    if not path.is_file():
        raise UserInputError(
            f"ckpt_path {path} not found: give a .ckpt file, or ckpt_path=last with "
            "hydra.run.dir=<the run to resume>"
        )
    if not zipfile.is_zipfile(path):  # what torch.save writes; torch's own error is cryptic
        raise UserInputError(
            f"ckpt_path {path} is not a readable checkpoint (not a file torch.save wrote): "
            "give a .ckpt file written by solar-train"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception as err:  # any unreadable file: torch raises many different types
        raise UserInputError(f"ckpt_path {path} is not a readable checkpoint: {err}") from err
    if not isinstance(checkpoint, Mapping) or "state_dict" not in checkpoint:
        raise UserInputError(f"ckpt_path {path} is not a Lightning checkpoint (no state_dict)")
    return checkpoint


def run_config(run_dir: Path) -> DictConfig:
    """A finished run's composed config (`.hydra/`), its data paths made absolute.

    Relative `data.root`, `data.csv_path` and `data.cache_dir` are relative to the folder the run
    was started from, which Hydra records, not to wherever the config is read (a notebook).
    """
    config = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    launch_dir = Path(OmegaConf.load(run_dir / ".hydra" / "hydra.yaml").hydra.runtime.cwd)
    for key in ("root", "csv_path", "cache_dir"):
        if config.data.get(key):
            config.data[key] = str(launch_dir / config.data[key])
    return config


def instantiate_all(group: DictConfig | None) -> list[Any]:
    """Instantiate each `_target_` node of a callbacks/logger group; null entries are off."""
    if not group:
        return []
    return [instantiate(node) for node in group.values() if node and "_target_" in node]


def as_floats(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {key: float(value) for key, value in sorted(metrics.items())}


def write_json(path: Path, payload: Mapping[str, Any]) -> None:
    """Write JSON atomically: a killed run leaves the old file or the new one, never half."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, allow_nan=True))
    tmp.replace(path)


def read_report(path: Path) -> dict[str, Any] | None:
    """A sensitivity report written by the callback (in any process), if there is one."""
    return json.loads(path.read_text()) if path.is_file() else None


def print_summary(
    title: str,
    metrics: Mapping[str, float],
    class_names: list[str],
    stage: str,
    locations: Mapping[str, str],
    report: Mapping[str, Any] | None = None,
    table_features: tuple[str, ...] = ("brightness", "clarity"),
) -> None:
    """Accuracy and per-class recall, where the files are, and the seed-style tables."""
    console = Console()
    table = Table(title=title, show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")

    def add(name: str, key: str) -> None:
        value = metrics.get(f"{stage}/{key}", math.nan)
        table.add_row(name, f"{100 * value:.2f} %")

    add("accuracy", "acc")
    for name in class_names:
        add(f"recall {name}", f"recall/{name}")
    add("F1 macro", "f1_macro")
    add("AUROC", "auroc")
    console.print(table)
    for name, where in locations.items():
        console.print(f"{name}: {where}")
    if report:
        for feature in table_features:
            if feature in report["features"]:
                console.print(f"\n{seed_table(report, feature)}", markup=False)
