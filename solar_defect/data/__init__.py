"""EL-cell data: sources, label protocols, splits, decode cache, augmentation, the datamodule."""

from solar_defect.data.datamodule import ELDataModule, EvalSet

__all__ = ["ELDataModule", "EvalSet"]
