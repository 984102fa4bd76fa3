"""`solar-train`: fit, validate the best checkpoint, test if there is a test split, report."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint

from solar_defect.cli import CONFIG_DIR, user_errors
from solar_defect.runs import (
    as_floats,
    check_writable,
    instantiate_all,
    print_summary,
    read_report,
    resolve_ckpt_path,
    write_json,
)

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run one training job from a composed config; returns what `metrics.json` holds."""
    output_dir = Path(cfg.paths.output_dir)
    check_writable(output_dir)
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), output_dir)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)

    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    _write_skipped(output_dir, datamodule.skipped_paths)
    model = instantiate(
        cfg.model,
        class_names=datamodule.class_names,
        class_weights=datamodule.loss_weights(),
        _convert_="all",
    )
    callbacks = instantiate_all(cfg.get("callbacks"))
    trainer: pl.Trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=instantiate_all(cfg.get("logger")) or False
    )
    train_counts, val_counts = datamodule.counts("train"), datamodule.counts("val")
    log.info("Training on %s, validating on %s", train_counts, val_counts)

    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)

    best = _best_checkpoint(trainer)
    val = trainer.validate(model, datamodule=datamodule, ckpt_path=best or None, verbose=False)
    test = []
    if cfg.get("test") and "test" in datamodule.datasets:
        test = trainer.test(model, datamodule=datamodule, ckpt_path=best or None, verbose=False)
    results = {
        "val": as_floats(val[0]) if val else {},
        "test": as_floats(test[0]) if test else {},
        "best_checkpoint": best,
        "train_counts": train_counts,
        "val_counts": val_counts,
        "overrides": _overrides(),
    }
    if trainer.is_global_zero:
        write_json(output_dir / "metrics.json", results)
        print_summary(
            "solar-train: validation of the best checkpoint",
            results["val"],
            datamodule.class_names,
            "val",
            {
                "best checkpoint": best or "(none saved)",
                "metrics": str(output_dir / "metrics.json"),
                "TensorBoard": f"tensorboard --logdir {output_dir}",
            },
            read_report(output_dir / "sensitivity" / "validate.json"),
        )
    return results


def _best_checkpoint(trainer: pl.Trainer) -> str:
    callback = trainer.checkpoint_callback
    if isinstance(callback, ModelCheckpoint) and callback.best_model_path:
        return callback.best_model_path
    return ""


def _overrides() -> list[str]:
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def _write_skipped(output_dir: Path, skipped: list[str]) -> None:
    if skipped:
        (output_dir / "skipped_images.txt").write_text("\n".join(skipped) + "\n")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Console entry point; returns the optimised metric for sweepers."""
    with user_errors("solar-train"):
        OmegaConf.resolve(cfg)
        results = train(cfg)
    metric = cfg.get("optimized_metric")
    return results["val"].get(metric) if metric else None


if __name__ == "__main__":
    main()
