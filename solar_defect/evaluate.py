"""`solar-eval`: evaluate a checkpoint, choose an operating point, write metrics and a report."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from solar_defect.analysis.callback import SensitivityCallback
from solar_defect.analysis.gradcam import REPORT_FIGURE
from solar_defect.analysis.operating_point import operating_point
from solar_defect.analysis.report import read_predictions, write_report
from solar_defect.cli import hydra_main
from solar_defect.errors import UserInputError
from solar_defect.models.classifier import DefectClassifier
from solar_defect.runs import (
    as_floats,
    check_writable,
    instantiate_all,
    print_summary,
    resolve_ckpt_path,
    write_json,
)

log = logging.getLogger(__name__)

# The data settings that decide which images are evaluated and how they look to the model.
SPLIT_KEYS = (
    "source",
    "root",
    "csv_path",
    "class_names",
    "protocol",
    "image_size",
    "train_fraction",
    "test_fraction",
    "num_folds",
    "fold",
    "seed",
)


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate `cfg.ckpt_path` on the data of `cfg.data`; returns what `metrics.json` holds."""
    output_dir = Path(cfg.paths.output_dir)
    target_recall = float(cfg.target_recall)
    if not 0.0 < target_recall <= 1.0:
        raise UserInputError(f"target_recall must be in (0, 1], got {target_recall}")
    ckpt_path = _checkpoint_path(cfg, output_dir)
    check_writable(output_dir)
    for key, (trained, given) in data_differences(cfg.data, ckpt_path).items():
        log.warning(
            "data.%s is %r here but %r in the training run: the split or the images differ "
            "from training; pass training's data overrides to evaluate on its validation split",
            key,
            given,
            trained,
        )

    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("validate")
    model = _load_model(ckpt_path, datamodule.class_names)
    callbacks = instantiate_all(cfg.get("callbacks"))
    if not any(isinstance(c, SensitivityCallback) for c in callbacks):
        raise UserInputError(
            "callbacks.sensitivity is off: solar-eval needs it, its predictions feed the report"
        )
    trainer: pl.Trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=instantiate_all(cfg.get("logger")) or False
    )
    val = trainer.validate(model, datamodule=datamodule, verbose=False)
    has_test = "test" in datamodule.datasets
    test = trainer.test(model, datamodule=datamodule, verbose=False) if has_test else []
    results: dict[str, Any] = {
        "val": _without_best(val),
        "test": _without_best(test),
        "best_checkpoint": ckpt_path,
        "val_counts": datamodule.counts("val"),
        "overrides": list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else [],
    }
    if trainer.is_global_zero:
        # Read back what the callback wrote: that works under every strategy (also ddp_spawn,
        # whose callbacks ran in other processes) and is exactly what the run keeps on disk.
        predictions = read_predictions(output_dir / "predictions" / "validate.csv")
        held_out = None
        if has_test:
            test_predictions = read_predictions(output_dir / "predictions" / "test.csv")
            held_out = (test_predictions.probs, test_predictions.labels)
        results["operating_point"] = operating_point(
            predictions.probs,
            predictions.labels,
            predictions.class_names,
            target_recall,
            test=held_out,
        )
        write_json(output_dir / "metrics.json", results)
        sensitivity = json.loads((output_dir / "sensitivity" / "validate.json").read_text())
        gradcam = [REPORT_FIGURE] if (output_dir / REPORT_FIGURE.path).is_file() else []
        report = write_report(output_dir, results, sensitivity, predictions, gradcam)
        print_summary(
            "solar-eval: validation",
            results["val"],
            datamodule.class_names,
            "val",
            {
                "checkpoint": ckpt_path,
                "operating point": _describe(results["operating_point"]),
                "report": str(report),
                "metrics": str(output_dir / "metrics.json"),
            },
            sensitivity,
        )
    return results


def _checkpoint_path(cfg: DictConfig, output_dir: Path) -> str:
    """The checkpoint to evaluate, checked to be a readable Lightning checkpoint."""
    given = None if OmegaConf.is_missing(cfg, "ckpt_path") else cfg.get("ckpt_path")
    if not given:
        raise UserInputError(
            "ckpt_path is required: solar-eval ckpt_path=RUN/checkpoints/FILE.ckpt "
            "[training's data overrides]"
        )
    path = Path(given)
    if not path.is_file():
        raise UserInputError(
            f"ckpt_path {path} not found: give a .ckpt file (a training run keeps them in "
            "its checkpoints/ folder)"
        )
    # An absolute path, so `resolve_ckpt_path` never reads a file named `last` as "resume".
    return resolve_ckpt_path(str(path.resolve()), output_dir)


def _load_model(ckpt_path: str, class_names: list[str]) -> DefectClassifier:
    """The trained classifier; its classes must be the data's, in the same order."""
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=False, mmap=True)
    trained = (checkpoint.get("hyper_parameters") or {}).get("class_names")
    if trained is None:
        raise UserInputError(
            f"ckpt_path {ckpt_path} is not a solar_defect checkpoint (no class_names in its "
            "hyper-parameters): give a checkpoint written by solar-train"
        )
    if list(trained) != list(class_names):
        raise UserInputError(
            f"the checkpoint was trained on classes {list(trained)} but the data has "
            f"{list(class_names)}: pass training's data.protocol / data.class_names"
        )
    # weights=None: the trained weights are in the checkpoint, pretrained files are not needed.
    return DefectClassifier.load_from_checkpoint(ckpt_path, map_location="cpu", weights=None)


def data_differences(data: DictConfig, ckpt_path: str | Path) -> dict[str, tuple[Any, Any]]:
    """`{key: (training's value, this run's value)}` for the data settings that differ.

    The training run is the one holding the checkpoint (`RUN/checkpoints/FILE.ckpt` next to
    `RUN/.hydra/config.yaml`); without that config there is nothing to compare.
    """
    config = Path(ckpt_path).resolve().parent.parent / ".hydra" / "config.yaml"
    if not config.is_file():
        return {}
    trained = OmegaConf.load(config)
    differences = {}
    for key in SPLIT_KEYS:
        before = OmegaConf.select(trained, f"data.{key}", throw_on_resolution_failure=False)
        before = OmegaConf.to_object(before) if OmegaConf.is_config(before) else before
        now = data.get(key)
        now = OmegaConf.to_object(now) if OmegaConf.is_config(now) else now
        if before != now:
            differences[key] = (before, now)
    return differences


def _without_best(results: list[dict[str, Any]]) -> dict[str, float]:
    # `val/acc_best` is the best over a training run's epochs: one checkpoint has no such thing.
    return (
        {k: v for k, v in as_floats(results[0]).items() if k != "val/acc_best"} if results else {}
    )


def _describe(point: dict[str, Any]) -> str:
    if point.get("positive_class") is None:
        return point["note"]
    positive, val = point["positive_class"], point["val"]
    return (
        f"P({positive}) >= {point['threshold']:.4f} gives recall {positive} "
        f"{100 * val['recall'][positive]:.2f} %, precision {100 * val['precision'][positive]:.2f} %"
    )


@hydra_main("solar-eval", config_name="eval")
def main(cfg: DictConfig) -> None:
    """Console entry point."""
    OmegaConf.resolve(cfg)
    evaluate(cfg)


if __name__ == "__main__":
    main()
