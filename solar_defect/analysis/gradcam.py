"""Grad-CAM on the most confident mistakes: where the model looked when it was surest and wrong.

The maps come from the `grad-cam` package. The target layer is found by one rule that fits
torchvision's classifiers: walk down the last child that holds a convolution until the first
`nn.Sequential` (a stage list such as ResNet's `layer4` or the `features` of EfficientNet,
ConvNeXt, VGG, DenseNet, MobileNet) and take its last convolution-holding element, e.g.
`backbone.layer4.1` of a ResNet18. The map is as coarse as that layer: 1/32 of the input side for
these models (7x7 at 224 px, 4x4 at 128 px), so at 32 px it is a single cell and carries no
location; pass another `target_layer` (e.g. `backbone.layer3`) for a finer one.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_lightning.loggers import TensorBoardLogger
from torch import nn

from solar_defect.analysis.callback import PredictionStore
from solar_defect.analysis.figures import figure_to_array, save_figure
from solar_defect.analysis.report import ReportFigure
from solar_defect.errors import UserInputError

log = logging.getLogger(__name__)

GRADCAM_PNG = "figures/gradcam.png"
REPORT_FIGURE = ReportFigure(
    title="Grad-CAM of the most confident mistakes",
    path=GRADCAM_PNG,
    caption=(
        "Validation cells the model got wrong with the highest confidence; each shows the cell "
        "and the Grad-CAM of the predicted class (red: the regions that drove the decision)."
    ),
)


def confident_errors(
    labels: np.ndarray, preds: np.ndarray, probs: np.ndarray, n: int
) -> np.ndarray:
    """Indices of up to `n` misclassified samples, most confident (P of the prediction) first."""
    wrong = np.flatnonzero(np.asarray(labels) != np.asarray(preds))
    confidence = np.asarray(probs)[wrong, np.asarray(preds)[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")[:n]]


def _holds_conv(module: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in module.modules())


def target_layer(model: nn.Module, name: str | None = None) -> nn.Module:
    """The layer whose activations Grad-CAM weighs: `name` if given, else the module rule."""
    if name:
        try:
            return model.get_submodule(name)
        except AttributeError as err:
            raise UserInputError(
                f"target_layer {name!r} is not a sub-module of {type(model).__name__}: use a "
                "name from model.named_modules(), e.g. backbone.layer4"
            ) from err
    node = model
    while True:
        children = [c for c in node.children() if _holds_conv(c)]
        if not children:  # a convolution itself
            return node
        if isinstance(node, nn.Sequential):
            return children[-1]
        node = children[-1]


def gradcam_maps(
    model: nn.Module,
    images: np.ndarray | torch.Tensor,
    classes: Sequence[int],
    layer: nn.Module | None = None,
) -> np.ndarray:
    """(N, H, W) float32 Grad-CAM maps in [0, 1] (each scaled to its own maximum).

    Args:
        model: uint8 (N, 1, H, W) in, logits out (e.g. `DefectClassifier.net`).
        images: (N, 1, H, W) or (N, H, W) uint8 cells.
        classes: the class to explain for each image.
        layer: the target layer; `target_layer(model)` when None.

    The model's mode and gradients are restored, so it can run inside a training loop.
    """
    layer = layer if layer is not None else target_layer(model)
    was_training = model.training
    targets = [ClassifierOutputTarget(int(c)) for c in classes]
    # Lightning's evaluation loops run under inference mode; Grad-CAM needs autograd
    with torch.inference_mode(False), torch.enable_grad():
        batch = torch.as_tensor(np.asarray(images)).clone()
        batch = batch[:, None] if batch.ndim == 3 else batch  # (N, 1, H, W)
        try:
            with GradCAM(model=model, target_layers=[layer]) as cam:
                maps = cam(input_tensor=batch, targets=targets)
        finally:
            model.zero_grad(set_to_none=True)
            model.train(was_training)
    return np.asarray(maps, dtype=np.float32)


def gradcam_figure(
    model: nn.Module,
    images: np.ndarray | torch.Tensor,
    labels: np.ndarray,
    preds: np.ndarray,
    probs: np.ndarray,
    class_names: Sequence[str],
    n: int = 8,
    names: Sequence[str] | None = None,
    layer_name: str | None = None,
    columns: int = 4,
) -> Figure | None:
    """The `n` most confident mistakes: each cell beside its Grad-CAM of the predicted class.

    Args:
        model: uint8 (N, 1, H, W) in, logits out.
        images: (N, 1, H, W) or (N, H, W) uint8 cells, row for row with the arrays below.
        labels: (N,) true class indices.
        preds: (N,) predicted class indices.
        probs: (N, C) class probabilities.
        class_names: names of the C classes.
        n: most cells shown.
        names: optional file name of each cell, shown in its caption.
        layer_name: target layer (see `target_layer`); the module rule when None.
        columns: cells per row.

    Returns:
        The figure, or None when nothing is misclassified.
    """
    rows = confident_errors(labels, preds, probs, n)
    if not len(rows):
        return None
    layer = target_layer(model, layer_name)
    shown = layer_name or next(k for k, m in model.named_modules() if m is layer)
    cells = np.asarray(images)[rows].reshape(len(rows), *np.asarray(images).shape[-2:])
    maps = gradcam_maps(model, cells, np.asarray(preds)[rows], layer)

    grid_cols = min(columns, len(rows))
    grid_rows = math.ceil(len(rows) / grid_cols)
    fig = Figure(figsize=(3.4 * grid_cols, 2.1 * grid_rows + 0.5), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    for k, (i, cell, cam) in enumerate(zip(rows, cells, maps, strict=True)):
        rgb = np.repeat(cell[..., None], 3, axis=-1)  # (H, W, 3) uint8
        overlay = show_cam_on_image(rgb.astype(np.float32) / 255.0, cam, use_rgb=True)
        gap = np.full((cell.shape[0], max(1, cell.shape[1] // 16), 3), 255, np.uint8)
        ax = fig.add_subplot(grid_rows, grid_cols, k + 1)
        ax.imshow(np.concatenate([rgb, gap, overlay], axis=1))
        ax.set_axis_off()
        pred = int(preds[i])
        caption = f"true {class_names[int(labels[i])]}, pred {class_names[pred]} "
        caption += f"{probs[i, pred]:.2f}"
        if names is not None:
            caption = f"{names[i]}\n{caption}"
        ax.set_title(caption, fontsize="small")
    fig.suptitle(f"Grad-CAM of the predicted class ({shown}): the most confident mistakes")
    return fig


def gradcam_grid(
    model: nn.Module,
    images: np.ndarray | torch.Tensor,
    labels: np.ndarray,
    preds: np.ndarray,
    probs: np.ndarray,
    class_names: Sequence[str],
    n: int = 8,
    **options: Any,
) -> np.ndarray | None:
    """`gradcam_figure` rendered to an (H, W, 3) uint8 RGB array; None when no mistakes."""
    fig = gradcam_figure(model, images, labels, preds, probs, class_names, n, **options)
    return None if fig is None else figure_to_array(fig)


class GradCamCallback(pl.Callback):
    """Grad-CAM grid of the most confident validation mistakes.

    Logged to TensorBoard as `val/gradcam` and saved as `figures/gradcam.png` in the run
    directory. It runs on every `trainer.validate` (so at the end of `solar-train`, which
    validates the best checkpoint, and in `solar-eval`) and, during fit, every `every_n_epochs`
    epochs when set.

    Args:
        output_dir: the run directory.
        num_images: most cells shown.
        every_n_epochs: also run during fit every this many epochs (None: never during fit).
        target_layer: module name of the layer to explain (None: see `target_layer`).
    """

    def __init__(
        self,
        output_dir: str,
        num_images: int = 8,
        every_n_epochs: int | None = None,
        target_layer: str | None = None,
    ) -> None:
        if num_images < 1 or (every_n_epochs is not None and every_n_epochs < 1):
            raise UserInputError(
                "callbacks.gradcam.num_images and every_n_epochs must be >= 1, got "
                f"{num_images} and {every_n_epochs}"
            )
        self.output_dir = Path(output_dir)
        self.num_images, self.every_n_epochs = num_images, every_n_epochs
        self.target_layer = target_layer
        self.store = PredictionStore()

    def _active(self, trainer: pl.Trainer) -> bool:
        if trainer.sanity_checking:
            return False
        if trainer.state.fn != "fit":
            return True
        return bool(self.every_n_epochs) and (trainer.current_epoch + 1) % self.every_n_epochs == 0

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.store = self.store.to(pl_module.device)

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ):
        if self._active(trainer):
            self.store.update(outputs["index"], outputs["probs"])

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._active(trainer):
            return
        index, probs = self.store.compute()  # every rank's samples
        self.store.reset()
        if not trainer.is_global_zero:
            return
        index, first = np.unique(index.cpu().numpy(), return_index=True)  # each sample once
        probs = probs.float().cpu().numpy()[first]
        data = trainer.datamodule.eval_set("val")
        labels, preds = data.labels[index], probs.argmax(axis=1)
        # render only the chosen cells: no copy of the whole split's pixels
        chosen = confident_errors(labels, preds, probs, self.num_images)
        path = self.output_dir / GRADCAM_PNG
        if not len(chosen):
            log.info("Grad-CAM: no misclassified validation cells to show")
            path.unlink(missing_ok=True)  # never leave an older epoch's grid behind
            return
        rows = index[chosen]
        images = trainer.datamodule.datasets["val"].__getitems__(rows.tolist())[0]
        fig = gradcam_figure(
            pl_module.net,
            images.numpy(),
            labels[chosen],
            preds[chosen],
            probs[chosen],
            data.class_names,
            n=len(chosen),
            names=[data.rel_paths[i] for i in rows],
            layer_name=self.target_layer,
        )
        save_figure(fig, path)
        grid = figure_to_array(fig)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image(
                    "val/gradcam", grid, trainer.current_epoch, dataformats="HWC"
                )
