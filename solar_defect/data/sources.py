"""Read a data source into a cell table: the ELPV package, a class-folder tree, or a CSV.

Every source ends in the same `CellTable`, so protocols, splits and the cache never need to know
where the cells came from.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from solar_defect.errors import UserInputError

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")


@dataclass(frozen=True)
class CellTable:
    """One row per image file.

    Attributes:
        root: folder that `rel_paths` are relative to (reports show paths relative to it).
        rel_paths: path of each image relative to `root`.
        labels: the raw label of each cell: a defect probability (float) for ELPV-style sources,
            or a class name (str) for folder and named-class CSV sources.
        types: cell type (`mono`, `poly`) where known, else "".
    """

    root: Path
    rel_paths: list[str]
    labels: list[float] | list[str]
    types: list[str]

    def __post_init__(self) -> None:
        if not self.rel_paths:
            raise UserInputError(f"no images found under {self.root}: check data.root")

    @property
    def paths(self) -> list[Path]:
        return [self.root / p for p in self.rel_paths]

    @property
    def has_probabilities(self) -> bool:
        return isinstance(self.labels[0], float)

    def subset(self, keep: np.ndarray) -> CellTable:
        """Rows where `keep` (bool mask) is true."""
        rows = np.flatnonzero(keep)
        return CellTable(
            self.root,
            [self.rel_paths[i] for i in rows],
            [self.labels[i] for i in rows],
            [self.types[i] for i in rows],
        )


def elpv_root() -> Path:
    """The data folder of the installed `elpv-dataset` package (never downloaded)."""
    try:
        root = resources.files("elpv_dataset") / "data"
    except ModuleNotFoundError as err:
        raise UserInputError(
            "the elpv-dataset package is not installed: run `pip install -e .` (or make train)"
        ) from err
    return Path(str(root))


def read_elpv(root: Path | None = None) -> CellTable:
    """ELPV `labels.csv`: whitespace-separated `images/cellNNNN.png probability mono|poly`."""
    root = Path(root) if root is not None else elpv_root()
    labels_file = root / "labels.csv"
    if not labels_file.is_file():
        raise UserInputError(f"ELPV labels not found at {labels_file}: reinstall elpv-dataset")
    rel_paths, probabilities, types = [], [], []
    for line_no, line in enumerate(labels_file.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3:
            raise UserInputError(f"{labels_file}:{line_no}: expected `path probability type`")
        rel_paths.append(fields[0])
        probabilities.append(_probability(fields[1], f"{labels_file}:{line_no}"))
        types.append(fields[2])
    return CellTable(root, rel_paths, probabilities, types)


def read_folder(root: Path, class_names: list[str]) -> CellTable:
    """A tree `root/<class_name>/**/*.png` (any image suffix); sub-folder names are the labels."""
    root = _existing_dir(root, "data.root")
    present = sorted(p.name for p in root.iterdir() if p.is_dir())
    missing = [name for name in class_names if name not in present]
    if missing:
        raise UserInputError(
            f"class folder(s) {missing} missing under {root} (found {present}): "
            "create them or set data.class_names"
        )
    rel_paths, labels = [], []
    for name in class_names:
        files = sorted(p for p in (root / name).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        rel_paths += [str(p.relative_to(root)) for p in files]
        labels += [name] * len(files)
    return CellTable(root, rel_paths, labels, [""] * len(rel_paths))


def read_csv(csv_path: Path, root: Path | None = None) -> CellTable:
    """A CSV with columns `path,label[,type]`.

    `label` is either a defect probability in [0, 1] (then the label protocol applies) or a class
    name. Relative paths are resolved against `root` when given, else the CSV's folder.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise UserInputError(f"labels CSV not found: {csv_path}: check data.csv_path")
    base = _existing_dir(root, "data.root") if root is not None else csv_path.parent
    with csv_path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        missing = [c for c in ("path", "label") if c not in columns]
        if missing:
            raise UserInputError(
                f"{csv_path}: missing column(s) {missing} (has {columns}): "
                "the CSV needs a header `path,label[,type]`"
            )
        rows = list(reader)
    if not rows:
        raise UserInputError(f"{csv_path} has no rows: add `path,label` lines")
    rel_paths = [row["path"] for row in rows]
    raw = [row["label"].strip() for row in rows]
    labels: list[float] | list[str]
    if all(_is_number(v) for v in raw):
        labels = [_probability(v, f"{csv_path}:{i + 2}") for i, v in enumerate(raw)]
    else:
        labels = raw
    types = [(row.get("type") or "").strip() for row in rows]
    return CellTable(base.resolve(), rel_paths, labels, types)


def read_source(
    source: str,
    root: str | Path | None = None,
    csv_path: str | Path | None = None,
    class_names: list[str] | None = None,
) -> CellTable:
    """Dispatch on `data.source`: `elpv`, `folder` or `csv`."""
    if source == "elpv":
        return read_elpv(Path(root) if root else None)
    if source == "folder":
        if not root:
            raise UserInputError("data=folder needs data.root=DIR (a folder of class folders)")
        return read_folder(Path(root), list(class_names or []))
    if source == "csv":
        if not csv_path:
            raise UserInputError("data=csv needs data.csv_path=FILE (columns path,label[,type])")
        return read_csv(Path(csv_path), Path(root) if root else None)
    raise UserInputError(f"unknown data.source {source!r}: use elpv, folder or csv")


def _existing_dir(path: Path | str | None, key: str) -> Path:
    path = Path(str(path))
    if not path.is_dir():
        raise UserInputError(f"{key} {path} is not an existing folder: check {key}=DIR")
    return path


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _probability(text: str, where: str) -> float:
    value = float(text)
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise UserInputError(f"{where}: defect probability {text} is not in [0, 1]: fix the label")
    return value
