"""HParams for TensorBoard: each run's settings beside its final metrics.

Pointed at a multirun root, TensorBoard's HParams tab then compares the sweep's runs: which
augmentation or balance won, for which class.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.loggers import TensorBoardLogger

HP_METRICS = ("acc", "f1_macro", "auroc")


def hp_metric_names(class_names: list[str]) -> list[str]:
    return [f"hp/{m}" for m in HP_METRICS] + [f"hp/recall/{c}" for c in class_names]


class HParamsCallback(pl.Callback):
    """Registers hyperparameters at fit start; writes `hp/*` from the final validation.

    The final validation is the one `solar-train` runs on the best checkpoint after fitting, so
    `hp/acc` is the accuracy that `metrics.json` reports.

    Args:
        hparams: flat settings to compare runs by (interpolated from the config).
    """

    def __init__(self, hparams: Mapping[str, Any]) -> None:
        self.hparams = dict(hparams)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        datamodule = trainer.datamodule
        params = {**self.hparams}
        for name, count in datamodule.counts("train").items():
            params[f"train_count/{name}"] = count
        placeholders = dict.fromkeys(hp_metric_names(datamodule.class_names), 0.0)
        for logger in _tensorboard(trainer):
            logger.log_hyperparams(params, metrics=placeholders)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn != "validate":
            return
        metrics = trainer.callback_metrics
        values = {
            f"hp/{m}": float(metrics[f"val/{m}"]) for m in HP_METRICS if f"val/{m}" in metrics
        }
        for name in trainer.datamodule.class_names:
            key = f"val/recall/{name}"
            if key in metrics:
                values[f"hp/recall/{name}"] = float(metrics[key])
        for logger in _tensorboard(trainer):
            logger.log_metrics(values, step=trainer.global_step)


def _tensorboard(trainer: pl.Trainer) -> list[TensorBoardLogger]:
    return [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
