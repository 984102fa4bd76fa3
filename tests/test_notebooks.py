"""The notebooks run against real run directories and show what they claim.

Each notebook is executed in a fresh kernel of this interpreter, in `notebooks/`, with its input
passed through its environment variable, as a user would run it.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import re
import shutil
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from omegaconf import DictConfig, OmegaConf, open_dict

from solar_defect.analysis.comparison import find_runs
from solar_defect.analysis.tables import seed_table
from solar_defect.runs import run_config
from solar_defect.sweep import ComparisonCallback
from solar_defect.train import train
from tests.conftest import compose_as_cli, tiny_run_overrides

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
TIMEOUT_S = 120
ONE_BATCH_NO_CHECKPOINTS = [
    "trainer.limit_train_batches=1",
    "callbacks.model_checkpoint=null",
    "callbacks.last_checkpoint=null",
]


def execute(name: str, **env: str) -> nbformat.NotebookNode:
    """Run a notebook in `notebooks/` with `env` added; a failing cell raises."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    notebook.cells.insert(0, nbformat.v4.new_code_cell("import sys\nprint(sys.executable)"))
    client = NotebookClient(
        notebook,
        timeout=TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute(env={**os.environ, **env})
    # the kernel is this interpreter (the venv's), not whatever `python` is on the PATH
    assert notebook.cells[0].outputs[0]["text"].strip() == sys.executable
    return notebook


def outputs(notebook: nbformat.NotebookNode, mime: str) -> list[str]:
    """Every output of type `mime` (`text/plain` includes printed text), in cell order."""
    found = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output["output_type"] == "stream" and mime == "text/plain":
                found.append(output["text"])
            elif mime in output.get("data", {}):
                found.append(output["data"][mime])
    return found


def write_hydra_dir(cfg: DictConfig, run_dir: Path) -> None:
    """`.hydra/config.yaml` and `hydra.yaml` as Hydra writes them for a `solar-train` job."""
    hydra_dir = run_dir / ".hydra"
    hydra_dir.mkdir(parents=True)
    task = copy.deepcopy(cfg)
    with open_dict(task):
        del task["hydra"]
    OmegaConf.save(task, hydra_dir / "config.yaml")
    OmegaConf.save(OmegaConf.masked_copy(cfg, "hydra"), hydra_dir / "hydra.yaml")


@pytest.fixture(scope="module")
def run_dir(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared two-epoch tiny run, copied, with the `.hydra/` a CLI run has.

    The run was trained in-process (no Hydra job, so no `.hydra/`); its config is composed again
    from the overrides its `metrics.json` recorded. The copy leaves the shared run untouched.
    """
    source = tiny_checkpoint.parent.parent
    base = tmp_path_factory.mktemp("notebook_run")
    run = base / "run"
    shutil.copytree(source, run, ignore=shutil.ignore_patterns("checkpoints", "tensorboard"))
    overrides = json.loads((run / "metrics.json").read_text())["overrides"]
    write_hydra_dir(compose_as_cli([*overrides, f"hydra.run.dir={run}"], base), run)
    return run


@pytest.fixture(scope="module")
def sweep_dir(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-job sweep, augmentation=none,flip, ended as a multirun ends.

    One training batch a job and no checkpoints: each job validates its last weights.
    """
    base = tmp_path_factory.mktemp("notebook_sweep")
    sweep = base / "sweep"
    # every job shares the run overrides (the decode cache too); only augmentation differs
    shared = [o for o in tiny_run_overrides(synthetic_root, base) if "hydra.run.dir" not in o]
    for job, augmentation in enumerate(("none", "flip")):
        overrides = [*shared, f"augmentation={augmentation}", *ONE_BATCH_NO_CHECKPOINTS]
        train(compose_as_cli([*overrides, f"hydra.run.dir={sweep / str(job)}"], base))
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}})
    ComparisonCallback().on_multirun_end(config)  # as `solar-train -m` ends
    return sweep


def test_notebooks_are_committed_without_outputs():
    paths = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert [p.name for p in paths] == [
        "01-data-exploration.ipynb",
        "02-sensitivity-analysis.ipynb",
        "03-compare-augmentation.ipynb",
    ]
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        assert notebook.metadata.kernelspec.name == "python3", path.name
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [], f"{path.name}: strip the outputs before committing"
                assert cell.execution_count is None, f"{path.name}: cell {cell.id} has a count"


@pytest.mark.slow
def test_data_exploration_counts_the_runs_split(run_dir):
    notebook = execute("01-data-exploration.ipynb", SOLAR_DEFECT_RUN_DIR=str(run_dir))

    (table,) = [text for text in outputs(notebook, "text/markdown") if "| split |" in text]
    shown = {}
    for line in table.splitlines()[2:]:
        split, name, *counts = [cell.strip() for cell in line.strip("|").split("|")]
        shown.setdefault(split, {})[name] = int(counts[-1])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    # no augmentation: the training count is the source count
    assert shown == {"train": metrics["train_counts"], "val": metrics["val_counts"]}
    assert "the counts match the run's metrics.json" in "".join(outputs(notebook, "text/plain"))
    assert len(outputs(notebook, "image/png")) == 2  # the sample grid and the histograms


@pytest.mark.slow
def test_sensitivity_notebook_rebuilds_the_reports_tables(run_dir):
    notebook = execute("02-sensitivity-analysis.ipynb", SOLAR_DEFECT_RUN_DIR=str(run_dir))

    report = json.loads((run_dir / "sensitivity" / "validate.json").read_text())
    markdown = "\n".join(outputs(notebook, "text/markdown"))
    for feature in report["features"]:
        assert seed_table(report, feature) in markdown
    text = "".join(outputs(notebook, "text/plain"))
    assert "The rebuilt tables equal those of sensitivity/validate.json." in text
    with (run_dir / "predictions" / "validate.csv").open(newline="") as f:
        mistakes = sum(row["label"] != row["pred"] for row in csv.DictReader(f))
    match = re.search(r"showing the (\d+) most confident of (\d+) mistakes", text)
    assert match is not None
    assert (int(match[1]), int(match[2])) == (min(8, mistakes), mistakes)
    # a heatmap per feature, the confusion matrix, and the mistakes when there are some
    figures = len(report["features"]) + 1 + (mistakes > 0)
    assert len(outputs(notebook, "image/png")) == figures


@pytest.mark.slow
def test_comparison_notebook_plots_every_setting(sweep_dir):
    assert len(find_runs([sweep_dir])) == 2
    notebook = execute("03-compare-augmentation.ipynb", SOLAR_DEFECT_SWEEP_DIR=str(sweep_dir))

    (table,) = outputs(notebook, "text/markdown")
    settings = [line.split(" | ")[0] for line in table.splitlines() if line.startswith("| aug")]
    assert settings == ["| augmentation=none", "| augmentation=flip"]
    assert len(outputs(notebook, "image/png")) == 1


def test_run_config_makes_the_data_paths_absolute_from_the_launch_folder(tmp_path):
    hydra_dir = tmp_path / "run" / ".hydra"
    hydra_dir.mkdir(parents=True)
    data = {"root": "cells", "csv_path": None, "cache_dir": "./outputs/cache"}
    OmegaConf.save(OmegaConf.create({"data": data}), hydra_dir / "config.yaml")
    launch = {"hydra": {"runtime": {"cwd": "/launch"}}}
    OmegaConf.save(OmegaConf.create(launch), hydra_dir / "hydra.yaml")

    config = run_config(tmp_path / "run")

    assert config.data.root == "/launch/cells"
    assert config.data.cache_dir == "/launch/outputs/cache"
    assert config.data.csv_path is None
