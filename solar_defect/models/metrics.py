"""One metric collection, cloned per stage, giving the metric names of the design."""

from __future__ import annotations

from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)
from torchmetrics.wrappers import ClasswiseWrapper


def classification_metrics(class_names: list[str]) -> MetricCollection:
    """`acc`, `recall/{class}`, `precision/{class}`, `f1/{class}`, `f1_macro`, `auroc`.

    Updated with class probabilities (B, C) and labels (B,); torchmetrics syncs the states across
    DDP ranks at `compute()`, so the values are those of the whole split.
    """
    k = len(class_names)

    def per_class(metric, prefix: str) -> ClasswiseWrapper:
        return ClasswiseWrapper(metric, labels=list(class_names), prefix=prefix)

    return MetricCollection(
        {
            "acc": MulticlassAccuracy(k, average="micro"),
            "recall": per_class(MulticlassRecall(k, average=None), "recall/"),
            "precision": per_class(MulticlassPrecision(k, average=None), "precision/"),
            "f1": per_class(MulticlassF1Score(k, average=None), "f1/"),
            "f1_macro": MulticlassF1Score(k, average="macro"),
            "auroc": MulticlassAUROC(k),
        },
        # shared-state groups make torchmetrics warn that grouped members were never updated
        compute_groups=False,
    )
