"""Every experiment composes, and runs a fast_dev_run through `train` on synthetic data."""

import json
from pathlib import Path

import pytest
from hydra.utils import instantiate

from solar_defect.cli import CONFIG_DIR
from solar_defect.train import train

EXPERIMENTS = sorted(p.stem for p in (Path(CONFIG_DIR) / "experiment").glob("*.yaml"))


def test_experiment_list_is_complete():
    assert {
        "quickstart",
        "seed_cpu",
        "seed_baseline",
        "seed_flip",
        "seed_all_classes",
        "seed_targeted",
        "seed_guided",
    } <= set(EXPERIMENTS)


def test_train_config_defaults(compose_config, tmp_path):
    cfg = compose_config([f"hydra.run.dir={tmp_path}/run"])
    assert cfg.model.name == "resnet50"
    assert cfg.data.protocol == "seed"
    assert cfg.data.augmentation.name == "none"
    assert cfg.callbacks.sensitivity.num_bins == 5
    assert cfg.paths.output_dir == f"{tmp_path}/run"


@pytest.mark.parametrize(
    ("experiment", "model", "augmentation", "size"),
    [
        ("quickstart", "resnet18", "targeted_online", 128),
        ("seed_cpu", "resnet18", "none", 96),
        ("seed_baseline", "resnet50", "none", 224),
        ("seed_flip", "resnet50", "flip", 224),
        ("seed_all_classes", "resnet50", "all_classes", 224),
        ("seed_targeted", "resnet50", "targeted", 224),
        ("seed_guided", "resnet50", "guided", 224),
    ],
)
def test_experiment_settings(compose_config, tmp_path, experiment, model, augmentation, size):
    cfg = compose_config([f"experiment={experiment}", f"hydra.run.dir={tmp_path}/run"])
    assert (cfg.model.name, cfg.data.augmentation.name, cfg.data.image_size) == (
        model,
        augmentation,
        size,
    )


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_runs_fast_dev_run(compose_config, tiny_overrides, experiment, request):
    overrides = [o for o in tiny_overrides if not o.startswith(("model=", "trainer="))]
    if experiment == "seed_guided":  # derives its recipe from a finished run's report
        baseline_run = request.getfixturevalue("tiny_checkpoint").parent.parent
        overrides.append(f"guided.report={baseline_run}")
    cfg = compose_config(
        [f"experiment={experiment}", *overrides, "debug=fdr", "data.image_size=32"]
    )
    results = train(cfg)
    assert set(results["val"]) >= {"val/acc", "val/recall/defective", "val/auroc"}
    metrics = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert metrics["val_counts"] == {"functional": 8, "defective": 8}


@pytest.mark.parametrize("trainer", ["default", "cpu", "gpu", "ddp", "ddp_sim"])
def test_trainer_configs_compose(compose_config, tmp_path, trainer):
    cfg = compose_config([f"trainer={trainer}", f"hydra.run.dir={tmp_path}/run"])
    assert cfg.trainer._target_ == "pytorch_lightning.Trainer"
    if trainer in ("ddp", "ddp_sim"):
        assert cfg.trainer.strategy in ("ddp", "ddp_spawn")
    assert cfg.trainer.get("sync_batchnorm", False) == (trainer == "ddp")


def test_logger_configs_instantiate(compose_config, tmp_path):
    cfg = compose_config(["logger=many", f"hydra.run.dir={tmp_path}/run"])
    loggers = [instantiate(node) for node in cfg.logger.values()]
    assert [type(lg).__name__ for lg in loggers] == ["TensorBoardLogger", "CSVLogger"]
    assert Path(loggers[0].log_dir) == tmp_path / "run" / "tensorboard"
