"""Label protocols: how ELPV defect probabilities (0, 1/3, 2/3, 1) become classes.

The protocol fixes both the cells kept and the class names, so class names are defined here once
and read everywhere else from the data module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from solar_defect.data.sources import CellTable
from solar_defect.errors import UserInputError

BINARY_CLASSES = ["functional", "defective"]
FOUR_CLASSES = ["functional", "possibly_defective", "likely_defective", "defective"]
PROTOCOLS = ("seed", "threshold", "four_class")


@dataclass(frozen=True)
class LabelledCells:
    """A cell table with integer labels; class index 0 is functional."""

    table: CellTable
    labels: np.ndarray  # (N,) int64
    class_names: list[str]

    def counts(self, indices: np.ndarray | None = None) -> dict[str, int]:
        labels = self.labels if indices is None else self.labels[indices]
        counts = np.bincount(labels, minlength=len(self.class_names))
        return {name: int(n) for name, n in zip(self.class_names, counts, strict=True)}


def apply_protocol(
    table: CellTable, protocol: str, class_names: list[str] | None = None
) -> LabelledCells:
    """Turn raw labels into class indices.

    Probability labels follow `protocol`: `seed` keeps p=0 and p=1 only, `threshold` calls a cell
    defective iff p >= 0.5 (all cells), `four_class` keeps the four levels as classes. Named labels
    (folder or CSV sources) map onto `class_names` in order.
    """
    if protocol not in PROTOCOLS:
        raise UserInputError(f"unknown data.protocol {protocol!r}: use one of {list(PROTOCOLS)}")
    if table.has_probabilities:
        p = np.asarray(table.labels, dtype=np.float64)
        if protocol == "seed":
            keep = np.isclose(p, 0.0) | np.isclose(p, 1.0)
            labels, names = np.rint(p[keep]), BINARY_CLASSES
        elif protocol == "threshold":
            keep = np.ones(len(p), dtype=bool)
            labels, names = (p >= 0.5), BINARY_CLASSES
        else:
            levels = p * 3
            if not np.allclose(levels, np.rint(levels), atol=1e-3):
                raise UserInputError(
                    "data.protocol=four_class needs probabilities in {0, 1/3, 2/3, 1}: "
                    "use protocol=threshold for other values"
                )
            keep, labels, names = np.ones(len(p), dtype=bool), np.rint(levels), FOUR_CLASSES
        cells = LabelledCells(table.subset(keep), labels.astype(np.int64), list(names))
    else:
        names = list(class_names or BINARY_CLASSES)
        unknown = sorted(set(table.labels) - set(names))
        if unknown:
            raise UserInputError(
                f"unknown class label(s) {unknown[:5]} in {table.root}: "
                f"expected one of {names} (set data.class_names)"
            )
        index = {name: i for i, name in enumerate(names)}
        labels = np.array([index[label] for label in table.labels], dtype=np.int64)
        cells = LabelledCells(table, labels, names)
    empty = [name for name, n in cells.counts().items() if n == 0]
    if empty:
        raise UserInputError(
            f"class(es) {empty} have no images under protocol {protocol!r}: "
            "add images of that class or choose another data.protocol / data.class_names"
        )
    return cells
