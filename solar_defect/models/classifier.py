"""`DefectClassifier`: the LightningModule face over `GrayClassifier`."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics import MaxMetric, MeanMetric

from solar_defect.errors import UserInputError
from solar_defect.models.backbone import GrayClassifier, build_backbone
from solar_defect.models.metrics import classification_metrics

STAGES = ("train", "val", "test")
# checkpoint key of the data facts inference needs (`{"image_size": S}`)
CHECKPOINT_META = "solar_defect"


class DefectClassifier(pl.LightningModule):
    """Classifies EL cells; logs `{stage}/loss|acc|recall/{class}|...` and `val/acc_best`.

    Args:
        name: torchvision model name (ResNet50 by default).
        weights: pretrained weights (see `build_backbone`); None trains from scratch.
        class_names: from the data module; their number sets the head size.
        optimizer: partial optimizer (Hydra `_partial_: true`), called with the parameters;
            only needed for training.
        scheduler: optional partial LR scheduler; `total_steps` is filled in when it takes one.
        scheduler_interval: `step` or `epoch`.
        class_weights: cross-entropy class weights (`balance=loss_weights`), or None.
        channels_last: NHWC memory format, faster for convolutions on some CPUs and GPUs.
        compile: wrap the network in `torch.compile`.
    """

    def __init__(
        self,
        class_names: list[str],
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        name: str = "resnet50",
        weights: str | None = None,
        scheduler: Callable[..., Any] | None = None,
        scheduler_interval: str = "step",
        class_weights: list[float] | None = None,
        channels_last: bool = False,
        compile: bool = False,
    ) -> None:
        super().__init__()
        lr = getattr(optimizer, "keywords", {}).get("lr")
        if lr is not None and lr <= 0:
            raise UserInputError(f"model.optimizer.lr must be > 0, got {lr}")
        # plain values only, so checkpoints load with torch.load(weights_only=True)
        self.save_hyperparameters(ignore=["optimizer", "scheduler"], logger=False)
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.class_names = list(class_names)
        self.net = GrayClassifier(build_backbone(name, len(class_names), weights))
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.forward_net: nn.Module = torch.compile(self.net) if compile else self.net
        weight = torch.tensor(class_weights, dtype=torch.float32) if class_weights else None
        self.criterion = nn.CrossEntropyLoss(weight=weight)
        metrics = classification_metrics(self.class_names)
        # keys are "{stage}_metrics": nn.Module already has a `train` attribute
        self.metrics = nn.ModuleDict(
            {f"{s}_metrics": metrics.clone(prefix=f"{s}/") for s in STAGES}
        )
        # the loss as a metric too: synced once per epoch on every rank, no per-step `log`
        self.losses = nn.ModuleDict({f"{s}_loss": MeanMetric() for s in STAGES})
        self.val_acc_best = MaxMetric()
        self.val_acc_best.persistent(True)  # in checkpoints, so a resumed run keeps its best
        self.checkpoint_epoch: int | None = None  # epoch of the checkpoint evaluated, if any

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.hparams.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.forward_net(images)

    def _step(self, batch: tuple[torch.Tensor, ...], stage: str) -> dict[str, torch.Tensor]:
        images, labels, index = batch  # (B, 1, H, W) uint8, (B,), (B,)
        logits = self(images)
        loss = self.criterion(logits, labels)
        probs = logits.detach().float().softmax(dim=1)
        self.metrics[f"{stage}_metrics"].update(probs, labels)
        self.losses[f"{stage}_loss"].update(loss.detach(), weight=len(labels))
        return {"loss": loss, "probs": probs, "index": index}

    def training_step(self, batch, batch_idx: int) -> dict[str, torch.Tensor]:
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> dict[str, torch.Tensor]:
        return self._step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> dict[str, torch.Tensor]:
        return self._step(batch, "test")

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self(batch[0]).float().softmax(dim=1)

    def _log_epoch(self, stage: str) -> dict[str, torch.Tensor]:
        values = self.metrics[f"{stage}_metrics"].compute()  # synced across ranks by torchmetrics
        values[f"{stage}/loss"] = self.losses[f"{stage}_loss"].compute()
        self.metrics[f"{stage}_metrics"].reset()
        self.losses[f"{stage}_loss"].reset()
        self.log_dict(values, prog_bar=False)
        return values

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # What inference needs besides weights and classes: the side images were resized to.
        # The data module owns it, so it is read here rather than duplicated as a hparam.
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "image_size"):
            checkpoint[CHECKPOINT_META] = {"image_size": int(datamodule.image_size)}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.checkpoint_epoch = checkpoint.get("epoch")

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        values = self._log_epoch("val")
        if not self.trainer.sanity_checking:  # a sanity check sees two batches, not the split
            self.val_acc_best.update(values["val/acc"])
            self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True)

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def configure_optimizers(self) -> dict[str, Any]:
        if self.optimizer_factory is None:
            raise UserInputError("model.optimizer is not set: training needs an optimizer config")
        optimizer = self.optimizer_factory(params=self.parameters())
        scheduler_factory = self.scheduler_factory
        if scheduler_factory is None:
            return {"optimizer": optimizer}
        extra = {}
        if "total_steps" in inspect.signature(scheduler_factory.func).parameters:
            total_steps = int(self.trainer.estimated_stepping_batches)
            extra["total_steps"] = total_steps
            pct_start = scheduler_factory.keywords.get("pct_start")
            if pct_start is not None and pct_start * total_steps == 1:
                # OneCycleLR divides by (warm-up steps - 1): give a 1-step warm-up a second step
                extra["pct_start"] = 2 / total_steps
        scheduler = scheduler_factory(optimizer=optimizer, **extra)
        interval = self.hparams.scheduler_interval
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": interval},
        }
