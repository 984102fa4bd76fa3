"""`report.md`: an evaluation as one self-contained markdown file with PNG figures beside it.

Built only from what a run leaves on disk (the `metrics.json` dict, a sensitivity report and the
predictions CSV), so a notebook can rebuild or extend the report of any run.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from solar_defect.analysis.figures import (
    confusion_matrix_figure,
    save_figure,
    sensitivity_heatmap,
)
from solar_defect.analysis.tables import NULL_CELL, findings_text, seed_table

FIGURES_DIR = "figures"
STAGE_TITLES = {"val": "validation", "test": "test"}


@dataclass(frozen=True)
class Predictions:
    """One split's predictions, row for row with its predictions CSV."""

    class_names: list[str]
    labels: np.ndarray  # (N,) true class indices
    probs: np.ndarray  # (N, C) class probabilities
    paths: list[str] = field(default_factory=list)  # (N,) relative to the data root
    features: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (N,) image features

    @property
    def preds(self) -> np.ndarray:
        """(N,) predicted class indices: the most probable class, as the CSV's `pred` column."""
        return self.probs.argmax(axis=1)


@dataclass(frozen=True)
class ReportFigure:
    """A figure in the run directory, shown in the report's "More figures" section.

    Args:
        title: the figure's heading.
        path: the image file, relative to the run directory (so the report stays portable).
        caption: what to look at, in a sentence.
    """

    title: str
    path: str
    caption: str = ""


def read_predictions(path: str | Path) -> Predictions:
    """Labels, probabilities, paths and features from a `predictions/*.csv` of the callback.

    The class names are read from its `prob_{class}` columns, in index order; the features are
    the columns after them (`brightness`, `clarity`, `contrast`), so that
    `binning.sensitivity_report` can rebuild the run's report from the file alone.
    """
    with Path(path).open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
        header = [] if not rows else list(rows[0])
    class_names = [name.removeprefix("prob_") for name in header if name.startswith("prob_")]
    if not rows or not class_names:
        msg = f"{path} holds no predictions (expected the columns label, prob_<class>...)"
        raise ValueError(msg)
    index = {name: i for i, name in enumerate(class_names)}
    labels = np.array([index[row["label"]] for row in rows], dtype=np.int64)
    probs = np.array([[float(row[f"prob_{c}"]) for c in class_names] for row in rows])
    feature_names = header[header.index(f"prob_{class_names[-1]}") + 1 :]
    features = {name: np.array([float(row[name]) for row in rows]) for name in feature_names}
    return Predictions(class_names, labels, probs, [row["path"] for row in rows], features)


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) counts: rows are true classes, columns predicted ones."""
    flat = np.asarray(labels) * num_classes + np.asarray(preds)
    return np.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes)


def _value(value: float | None) -> str:
    return NULL_CELL if value is None else f"{value:.4f}"


def _metrics_table(metrics: Mapping[str, Any], class_names: list[str]) -> str:
    stages = [s for s in STAGE_TITLES if metrics.get(s)]
    rows = [("accuracy", "acc")]
    for kind in ("recall", "precision", "f1"):
        rows += [(f"{kind} {name}", f"{kind}/{name}") for name in class_names]
    rows += [("F1 macro", "f1_macro"), ("AUROC", "auroc"), ("loss", "loss")]
    lines = [
        "| metric | " + " | ".join(STAGE_TITLES[s] for s in stages) + " |",
        "|---|" + "---:|" * len(stages),
    ]
    for name, key in rows:
        cells = [_value(metrics[s].get(f"{s}/{key}")) for s in stages]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _operating_point_section(metrics: Mapping[str, Any], class_names: list[str]) -> list[str]:
    point = metrics.get("operating_point")
    if not point:
        return []
    if point.get("positive_class") is None:
        return ["## Operating point", "", f"Not computed: {point['note']}.", ""]
    positive, threshold = point["positive_class"], point["threshold"]
    rule = f"P({positive}) >= {threshold:.4f}"
    row_names = ["accuracy", *[f"recall {c}" for c in class_names], f"precision {positive}"]

    def at_argmax(stage: str) -> list[float | None]:
        keys = ["acc", *[f"recall/{c}" for c in class_names], f"precision/{positive}"]
        return [metrics[stage].get(f"{stage}/{key}") for key in keys]

    def at_threshold(entry: Mapping[str, Any]) -> list[float | None]:
        recalls = [entry["recall"][c] for c in class_names]
        return [entry["accuracy"], *recalls, entry["precision"][positive]]

    columns = {
        "validation, argmax": at_argmax("val"),
        f"validation, {rule}": at_threshold(point["val"]),
    }
    if "test" in point:
        columns["test, argmax"] = at_argmax("test")
        columns[f"test, {rule}"] = at_threshold(point["test"])
    lines = [
        "## Operating point",
        "",
        f"The threshold on P({positive}) that reaches a {positive} recall of at least "
        f"{point['target_recall']:.2f} with the best {positive} precision, chosen on the "
        "validation split (so its validation numbers are optimistic; test numbers, when there "
        "is a test split, are not). Argmax is the model's own decision.",
        "",
        "| metric | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for r, name in enumerate(row_names):
        lines.append(f"| {name} | " + " | ".join(_value(v[r]) for v in columns.values()) + " |")
    return [*lines, ""]


def _image(title: str, path: str) -> str:
    return f"![{title}]({path})"


def write_report(
    output_dir: str | Path,
    metrics: Mapping[str, Any],
    sensitivity: Mapping[str, Any],
    predictions: Predictions,
    extra_figures: Sequence[ReportFigure] = (),
) -> Path:
    """Write `report.md` and its figures (`figures/*.png`) into `output_dir`.

    Args:
        output_dir: the run directory.
        metrics: the `metrics.json` dict (`val`, `test`, `best_checkpoint`, `val_counts`,
            `overrides` and optionally `operating_point`).
        sensitivity: the validation sensitivity report (`sensitivity/validate.json`).
        predictions: the validation predictions, for the confusion matrix.
        extra_figures: more figures already saved in the run directory (e.g. Grad-CAM maps).

    Returns:
        The path of `report.md`.
    """
    output_dir = Path(output_dir)
    class_names = list(sensitivity["class_names"])
    if predictions.class_names != class_names:
        msg = (
            f"predictions are for classes {predictions.class_names} but the sensitivity "
            f"report for {class_names}: pass the files of one run"
        )
        raise ValueError(msg)
    preds = predictions.probs.argmax(axis=1)
    matrix = confusion_matrix(predictions.labels, preds, len(class_names))
    confusion_png = f"{FIGURES_DIR}/confusion_matrix.png"
    save_figure(confusion_matrix_figure(matrix, class_names), output_dir / confusion_png)

    epoch = sensitivity.get("epoch")
    counts = ", ".join(f"{n} {name}" for name, n in metrics.get("val_counts", {}).items())
    overrides = " ".join(metrics.get("overrides", [])) or "(none)"
    lines = [
        "# Evaluation report",
        "",
        f"- checkpoint: `{metrics.get('best_checkpoint', '')}`"
        + (f" (epoch {epoch})" if epoch is not None else ""),
        f"- validation images: {counts}",
        f"- overrides: `{overrides}`",
        "",
        "## Metrics",
        "",
        _metrics_table(metrics, class_names),
        "",
        "## Confusion matrix (validation)",
        "",
        _image("confusion matrix", confusion_png),
        "",
        *_operating_point_section(metrics, class_names),
        "## Sensitivity (validation)",
        "",
        "Accuracy of each class in quantile bins of an image feature, measured on the original "
        "images (cells read `accuracy (images)`); a large std across bins means the model "
        "depends on that feature.",
        "",
    ]
    for feature in sensitivity["features"]:
        heatmap_png = f"{FIGURES_DIR}/sensitivity_{feature}.png"
        save_figure(sensitivity_heatmap(dict(sensitivity), feature), output_dir / heatmap_png)
        lines += [
            f"### {feature}",
            "",
            seed_table(dict(sensitivity), feature),
            "",
            _image(f"{feature} heatmap", heatmap_png),
            "",
        ]
    lines += ["### Findings", "", findings_text(dict(sensitivity)), ""]
    if extra_figures:
        lines += ["## More figures", ""]
        for figure in extra_figures:
            lines += [f"### {figure.title}", "", _image(figure.title, figure.path), ""]
            if figure.caption:
                lines += [figure.caption, ""]
    path = output_dir / "report.md"
    path.write_text("\n".join(lines))
    return path
