"""Sweeps: launcher and Optuna configs compose, and real multiruns end in a comparison table."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import OmegaConf

from solar_defect.cli import CONFIG_DIR
from solar_defect.sweep import ComparisonCallback
from tests.conftest import SOLAR_TRAIN, run_cli, tiny_run_overrides


def sweep_overrides(data_root: Path, tmp_path: Path, sweep_dir: Path | None) -> list[str]:
    """The tiny synthetic-data run, as a fast_dev_run, its sweep placed at `sweep_dir`."""
    overrides = [o for o in tiny_run_overrides(data_root, tmp_path) if "hydra.run.dir" not in o]
    if sweep_dir is not None:
        overrides.append(f"hydra.sweep.dir={sweep_dir}")
    return [*overrides, "debug=fdr"]


@pytest.mark.parametrize(
    ("launcher", "setting", "target"),
    [
        ("local_parallel", "n_jobs=3", "hydra_joblib_launcher.joblib_launcher.JoblibLauncher"),
        ("slurm", "partition=gpu", "hydra_submitit_launcher.submitit_launcher.SlurmLauncher"),
    ],
)
def test_launcher_configs_compose_and_instantiate(
    compose_config, tmp_path, launcher, setting, target
):
    cfg = compose_config(
        [
            "augmentation=none",
            f"hydra/launcher={launcher}",
            f"hydra.launcher.{setting}",
            f"hydra.sweep.dir={tmp_path}/sweep",
            f"hydra.run.dir={tmp_path}/run",
        ]
    )
    key, value = setting.split("=")
    assert str(cfg.hydra.launcher[key]) == value
    assert cfg.hydra.launcher._target_ == f"hydra_plugins.{target}"
    assert cfg.hydra.callbacks.comparison._target_ == "solar_defect.sweep.ComparisonCallback"
    assert type(instantiate(cfg.hydra.launcher)).__name__ == target.rsplit(".", 1)[1]


def test_slurm_launcher_resources_are_config_values(compose_config, tmp_path):
    cfg = compose_config(
        [
            "hydra/launcher=slurm",
            "hydra.launcher.gpus_per_node=4",
            "hydra.launcher.tasks_per_node=4",
            "hydra.launcher.timeout_min=60",
            f"hydra.sweep.dir={tmp_path}/sweep",
            f"hydra.run.dir={tmp_path}/run",
        ]
    )
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert (launcher["gpus_per_node"], launcher["tasks_per_node"]) == (4, 4)
    assert launcher["timeout_min"] == 60
    assert launcher["submitit_folder"] == f"{tmp_path}/sweep/.submitit/%j"


@pytest.mark.parametrize("augmentation", ["targeted", "targeted_online"])
def test_optuna_search_space_names_real_config_keys(compose_config, tmp_path, augmentation):
    cfg = compose_config(
        ["hparams_search=optuna", f"augmentation={augmentation}", f"hydra.run.dir={tmp_path}/run"]
    )
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper")
    assert (sweeper.direction, sweeper.storage) == ("maximize", None)
    assert cfg.hydra.mode.name == "MULTIRUN"
    assert cfg.optimized_metric == "val/recall/defective"
    groups = {"augmentation", "balance"}
    for key in set(sweeper.params) - groups:
        assert OmegaConf.select(cfg, key) is not None, key


def test_default_sweep_dir_resolves_before_the_first_job(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(HydraConfig.instance(), "cfg", None)  # as before any job of a multirun
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", return_hydra_config=True)
    GlobalHydra.instance().clear()
    # resolvable without HydraConfig, as the sweepers need it
    assert cfg.hydra.sweep.dir.startswith("./outputs/train/multiruns/")


def test_callback_warns_and_does_not_fail_when_no_job_wrote_metrics(tmp_path, caplog):
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    with caplog.at_level(logging.WARNING, logger="solar_defect.sweep"):
        ComparisonCallback().on_multirun_end(config)
    assert "No comparison table" in caplog.text
    assert not (tmp_path / "comparison.md").exists()


def test_callback_writes_the_table_at_the_sweep_root(tmp_path):
    for job, seed in enumerate((1, 2)):
        (tmp_path / str(job)).mkdir()
        metrics = {
            "val": {"val/acc": 0.5 + job / 4, "val/recall/functional": 1.0},
            "train_counts": {"functional": 3},
            "overrides": ["augmentation=flip", f"seed={seed}"],
        }
        (tmp_path / str(job) / "metrics.json").write_text(json.dumps(metrics))
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    ComparisonCallback().on_multirun_end(config)
    assert "| augmentation=flip | 3 | 62.50 ± 17.68 | 100.00 ± 0.00 | \u2013 | \u2013 | 2 |" in (
        (tmp_path / "comparison.md").read_text()
    )


@pytest.mark.slow
def test_two_job_multirun_in_parallel_writes_a_two_row_comparison(synthetic_root, tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_cli(
        [
            SOLAR_TRAIN,
            "-m",
            "augmentation=none,flip",
            "hydra/launcher=local_parallel",
            *sweep_overrides(synthetic_root, tmp_path, sweep_dir),
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.parent.name for p in sweep_dir.glob("*/metrics.json")) == ["0", "1"]
    rows = [
        line
        for line in (sweep_dir / "comparison.md").read_text().splitlines()
        if line.startswith("| augmentation=")
    ]
    # 8 + 8 training cells; flip materialises each once more
    assert [row.split(" | ")[:2] for row in rows] == [
        ["| augmentation=none", "8 + 8"],
        ["| augmentation=flip", "16 + 16"],
    ]
    assert (sweep_dir / "comparison.csv").read_text().count("\n") == 3


@pytest.mark.slow
def test_two_trial_optuna_sweep_finishes(synthetic_root, tmp_path):
    # No hydra.sweep.dir: the default, timestamped one must be where the table lands too.
    result = run_cli(
        [
            SOLAR_TRAIN,
            "hparams_search=optuna",
            "hydra.sweeper.n_trials=2",
            *sweep_overrides(synthetic_root, tmp_path, None),
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep_dir,) = (tmp_path / "outputs" / "train" / "multiruns").iterdir()
    assert (sweep_dir / "optimization_results.yaml").is_file()
    assert len(list(sweep_dir.glob("*/metrics.json"))) == 2
    assert "model.optimizer.lr=" in (sweep_dir / "comparison.md").read_text()
