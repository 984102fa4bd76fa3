"""`SensitivityCallback`: the sensitivity analysis at the end of every validation epoch."""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from solar_defect.analysis.binning import sensitivity_report
from solar_defect.analysis.features import FEATURE_NAMES
from solar_defect.analysis.figures import (
    confusion_matrix_figure,
    figure_to_array,
    sensitivity_heatmap,
)
from solar_defect.analysis.tables import findings_text, seed_table
from solar_defect.data.datamodule import EvalSet
from solar_defect.errors import UserInputError

log = logging.getLogger(__name__)


class PredictionStore(Metric):
    """Sample indices and class probabilities of an epoch, gathered from all ranks."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("index", default=[], dist_reduce_fx="cat")
        self.add_state("probs", default=[], dist_reduce_fx="cat")

    def update(self, index: torch.Tensor, probs: torch.Tensor) -> None:
        self.index.append(index)
        self.probs.append(probs)

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        return dim_zero_cat(self.index), dim_zero_cat(self.probs)


class SensitivityCallback(pl.Callback):
    """Bins evaluated images by image features and reports each class's accuracy per bin.

    Features come from the data module's decode cache (computed once, on the original images),
    so an epoch costs only the binning and the writing. Rank 0 writes
    `sensitivity/{tag}.json` (+ `latest.json`) and `predictions/{tag}.csv`, where tag is
    `epoch_{EEE}` during fit, `validate` or `test` otherwise, and logs tables, heatmaps, the
    confusion matrix and `val/sensitivity/{feature}/std/{class}` to TensorBoard.

    Args:
        output_dir: the run directory.
        features: which cached features to bin by.
        num_bins: quantile bins per feature (>= 2).
        min_count: fewest images of a class in a bin for it to count as a finding.
        log_figures: render heatmaps and the confusion matrix to TensorBoard.
    """

    def __init__(
        self,
        output_dir: str,
        features: Sequence[str] = FEATURE_NAMES,
        num_bins: int = 5,
        min_count: int = 10,
        log_figures: bool = True,
    ) -> None:
        unknown = sorted(set(features) - set(FEATURE_NAMES))
        if unknown:
            raise UserInputError(
                f"unknown sensitivity feature(s) {unknown}: use some of {list(FEATURE_NAMES)}"
            )
        if num_bins < 2:
            raise UserInputError(f"callbacks.sensitivity.num_bins must be >= 2, got {num_bins}")
        self.output_dir = Path(output_dir)
        self.features = list(features)
        self.num_bins, self.min_count, self.log_figures = num_bins, min_count, log_figures
        self.store = PredictionStore()
        self._renderer: ThreadPoolExecutor | None = None  # made on first use: spawn pickles us
        self._pending: list[Future] = []

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.store = self.store.to(pl_module.device)

    # -- collecting ------------------------------------------------------------------------------
    def _collect(self, outputs: Any) -> None:
        self.store.update(outputs["index"], outputs["probs"])

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ):
        if not trainer.sanity_checking:
            self._collect(outputs)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._collect(outputs)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        fitting = trainer.state.fn == "fit"
        tag = f"epoch_{trainer.current_epoch:03d}" if fitting else "validate"
        report = self._analyse(trainer, pl_module, "val", tag)
        for feature in self.features:
            for name, std in report["features"][feature]["std"].items():
                if std is not None:
                    pl_module.log(f"val/sensitivity/{feature}/std/{name}", std)

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._analyse(trainer, pl_module, "test", "test")

    # -- analysing -------------------------------------------------------------------------------
    def _analyse(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, split: str, tag: str
    ) -> dict[str, Any]:
        index, probs = self.store.compute()  # every rank's samples
        self.store.reset()
        index, first = np.unique(index.cpu().numpy(), return_index=True)  # each sample once
        probs = probs.float().cpu().numpy()[first]
        data: EvalSet = trainer.datamodule.eval_set(split)
        preds = probs.argmax(axis=1)
        epoch = trainer.current_epoch if trainer.state.fn == "fit" else pl_module.checkpoint_epoch
        report = sensitivity_report(
            {name: data.features[name][index] for name in self.features},
            data.labels[index],
            preds,
            data.class_names,
            self.num_bins,
            epoch,
            self.min_count,
        )
        if trainer.is_global_zero:
            self._write(report, tag, data, index, probs)
            self._log_tensorboard(trainer, report, data.labels[index], preds, split)
        return report

    def _write(
        self, report: dict, tag: str, data: EvalSet, index: np.ndarray, probs: np.ndarray
    ) -> None:
        sensitivity_dir = self.output_dir / "sensitivity"
        predictions_dir = self.output_dir / "predictions"
        sensitivity_dir.mkdir(parents=True, exist_ok=True)
        predictions_dir.mkdir(parents=True, exist_ok=True)
        text = json.dumps(report, indent=1)
        (sensitivity_dir / f"{tag}.json").write_text(text)
        (sensitivity_dir / "latest.json").write_text(text)
        write_predictions(predictions_dir / f"{tag}.csv", data, index, probs, list(data.features))

    def _log_tensorboard(
        self, trainer: pl.Trainer, report: dict, labels: np.ndarray, preds: np.ndarray, split: str
    ) -> None:
        """Render in a worker thread: figures take ~0.5 s, the loop should not wait for them."""
        writers = [lg.experiment for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
        if writers:
            if self._renderer is None:
                self._renderer = ThreadPoolExecutor(1, thread_name_prefix="sensitivity-figures")
            step = trainer.current_epoch
            self._pending.append(
                self._renderer.submit(self._render, writers, report, labels, preds, split, step)
            )

    def _render(
        self,
        writers: list[Any],
        report: dict,
        labels: np.ndarray,
        preds: np.ndarray,
        split: str,
        step: int,
    ) -> None:
        tables = "\n\n".join(f"### {f}\n\n{seed_table(report, f)}" for f in self.features)
        tables += "\n\n### findings\n\n" + findings_text(report)
        k = len(report["class_names"])
        matrix = np.bincount(labels * k + preds, minlength=k * k).reshape(k, k)
        images = {}
        if self.log_figures:
            for feature in self.features:
                images[f"{split}/sensitivity/{feature}"] = sensitivity_heatmap(report, feature)
            images[f"{split}/confusion_matrix"] = confusion_matrix_figure(
                matrix, report["class_names"]
            )
        arrays = {tag: figure_to_array(figure) for tag, figure in images.items()}
        for writer in writers:
            writer.add_text(f"{split}/sensitivity_tables", tables, step)
            for tag, array in arrays.items():
                writer.add_image(tag, array, step, dataformats="HWC")

    def _finish_rendering(self) -> None:
        """Wait for pending figures; a failed figure is logged, never fatal to training."""
        for future in self._pending:
            try:
                future.result()
            except Exception as err:  # a figure must not take a finished training down
                log.warning("Sensitivity figures were not logged: %s", err)
        self._pending.clear()
        if self._renderer is not None:
            self._renderer.shutdown()
            self._renderer = None

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._finish_rendering()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self._finish_rendering()


def write_predictions(
    path: Path, data: EvalSet, index: np.ndarray, probs: np.ndarray, features: list[str]
) -> None:
    """`index,path,label,pred,prob_{class}...,{features}`; floats in full (repr) precision."""
    names = data.class_names
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["index", "path", "label", "pred", *[f"prob_{c}" for c in names], *features]
        )
        for row, i in enumerate(index):
            writer.writerow(
                [
                    int(i),
                    data.rel_paths[i],
                    names[data.labels[i]],
                    names[int(probs[row].argmax())],
                    *[repr(float(p)) for p in probs[row]],
                    *[repr(float(data.features[name][i])) for name in features],
                ]
            )
