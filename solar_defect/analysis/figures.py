"""Figures for the sensitivity report and the confusion matrix.

Figures are built on `matplotlib.figure.Figure` with an Agg canvas, not through pyplot: no
backend has to be chosen, nothing is kept in pyplot's figure registry (the callback makes
figures every epoch), and the same code works in a notebook and on a headless server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Colormap
from matplotlib.figure import Figure

from solar_defect.analysis.binning import feature_entry
from solar_defect.analysis.tables import NULL_CELL


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)  # attaches itself as fig.canvas
    return fig


def _text_colour(cmap: Colormap, fraction: float) -> str:
    """Black or white, whichever reads better on the colour at `fraction` of `cmap`."""
    r, g, b, _ = cmap(fraction)
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"


def sensitivity_heatmap(report: dict[str, Any], feature: str) -> Figure:
    """Per-bin, per-class accuracy of one feature as an annotated heatmap.

    Rows are the bins (lowest feature values on top, labelled with their range and edges),
    columns the classes. The colour scale is fixed to 0..1 so that epochs and runs compare;
    empty cells are grey.

    Args:
        report: a dict from `binning.sensitivity_report`.
        feature: one of the report's features.

    Returns:
        The figure (not shown, not registered with pyplot).
    """
    entry = feature_entry(report, feature)
    classes = report["class_names"]
    bins = entry["bins"]
    edges = entry["edges"]
    accuracy = np.array(
        [
            [np.nan if (a := row["per_class"][c]["accuracy"]) is None else a for c in classes]
            for row in bins
        ],
        dtype=np.float64,
    )  # (num_bins, num_classes)

    fig = _new_figure(2.6 + 1.5 * len(classes), 1.6 + 0.55 * len(bins))
    ax = fig.add_subplot()
    cmap = colormaps["viridis"].with_extremes(bad="lightgrey")
    image = ax.imshow(np.ma.masked_invalid(accuracy), cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto")
    for b, row in enumerate(bins):
        for c, cls in enumerate(classes):
            stats = row["per_class"][cls]
            value = stats["accuracy"]
            label = NULL_CELL if value is None else f"{value:.2f}"
            colour = "black" if value is None else _text_colour(cmap, value)
            ax.text(
                c,
                b,
                f"{label}\nn={stats['count']}",
                ha="center",
                va="center",
                color=colour,
            )
    ax.set_xticks(range(len(classes)), labels=classes)
    ax.set_yticks(
        range(len(bins)),
        labels=[
            f"{row['range']}\n[{edges[b]:.3g}, {edges[b + 1]:.3g}]" for b, row in enumerate(bins)
        ],
    )
    ax.set_xlabel("class")
    ax.set_ylabel(f"{feature} bin")
    std = ", ".join(
        f"{cls} {NULL_CELL if (s := entry['std'][cls]) is None else f'{s:.3f}'}" for cls in classes
    )
    title = f"{feature}: accuracy per bin"
    if report.get("epoch") is not None:
        title += f" (epoch {report['epoch']})"
    ax.set_title(f"{title}\nstd: {std}", fontsize="medium")
    fig.colorbar(image, ax=ax, label="accuracy")
    return fig


def confusion_matrix_figure(matrix: np.ndarray, class_names: list[str]) -> Figure:
    """An annotated confusion matrix: rows are true classes, columns predicted ones.

    Args:
        matrix: (C, C) counts (or fractions, shown with 2 decimals).
        class_names: the C class names, index order.

    Returns:
        The figure (not shown, not registered with pyplot).
    """
    matrix = np.asarray(matrix)
    num_classes = len(class_names)
    if matrix.shape != (num_classes, num_classes):
        msg = (
            f"matrix must be square with one row per class ({num_classes}x{num_classes} for "
            f"{list(class_names)}), got shape {matrix.shape}"
        )
        raise ValueError(msg)
    integral = bool(np.all(np.mod(matrix, 1) == 0))

    fig = _new_figure(2.4 + 1.1 * num_classes, 1.8 + 1.0 * num_classes)
    ax = fig.add_subplot()
    cmap = colormaps["Blues"]
    top = float(matrix.max()) if matrix.size and matrix.max() > 0 else 1.0
    ax.imshow(matrix, cmap=cmap, vmin=0.0, vmax=top)
    for t in range(num_classes):
        for p in range(num_classes):
            value = matrix[t, p]
            label = f"{int(value)}" if integral else f"{value:.2f}"
            ax.text(
                p,
                t,
                label,
                ha="center",
                va="center",
                color=_text_colour(cmap, value / top),
            )
    ax.set_xticks(range(num_classes), labels=class_names)
    ax.set_yticks(range(num_classes), labels=class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    total = f"n={int(matrix.sum())}" if integral else "normalised"
    ax.set_title(f"confusion matrix ({total})", fontsize="medium")
    return fig


def figure_to_array(fig: Figure) -> np.ndarray:
    """Render a figure to an (H, W, 3) uint8 RGB array, e.g. for TensorBoard's `add_image`."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Save a figure (format from the suffix), creating the parent folders; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=fig.dpi)
    return path
