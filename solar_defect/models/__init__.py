"""The classifier: a torchvision backbone behind a LightningModule."""

from solar_defect.models.classifier import DefectClassifier

__all__ = ["DefectClassifier"]
