"""Markdown tables and figures rendered from small hand-made reports."""

from pathlib import Path

import numpy as np
import pytest

from solar_defect.analysis.binning import sensitivity_report
from solar_defect.analysis.figures import (
    confusion_matrix_figure,
    figure_to_array,
    save_figure,
    sensitivity_heatmap,
)
from solar_defect.analysis.tables import findings_text, seed_table

CLASSES = ["functional", "defective"]


def _small_report() -> dict:
    labels = np.array([0, 0, 0, 1, 0, 1, 0, 1, 1, 1])
    preds = np.array([0, 1, 0, 1, 0, 0, 0, 1, 0, 0])
    return sensitivity_report({"brightness": np.arange(10.0)}, labels, preds, CLASSES)


def test_seed_table_with_counts() -> None:
    assert seed_table(_small_report(), "brightness") == (
        "| brightness bin | functional (n) | defective (n) |\n"
        "|---|---|---|\n"
        "| 0%-20% | 0.5000 (2) | \u2013 |\n"
        "| 20%-40% | 1.0000 (1) | 1.0000 (1) |\n"
        "| 40%-60% | 1.0000 (1) | 0.0000 (1) |\n"
        "| 60%-80% | 1.0000 (1) | 1.0000 (1) |\n"
        "| 80%-100% | \u2013 | 0.0000 (2) |\n"
        "| std | 0.2165 | 0.5000 |"
    )


def test_seed_table_without_counts_and_unknown_feature() -> None:
    table = seed_table(_small_report(), "brightness", with_counts=False).splitlines()
    assert table[0] == "| brightness bin | functional | defective |"
    assert table[4] == "| 40%-60% | 1.0000 | 0.0000 |"
    with pytest.raises(ValueError, match="it has \\['brightness'\\]"):
        seed_table(_small_report(), "clarity")


def test_findings_text() -> None:
    assert findings_text(_small_report()).startswith("No weak bins")
    labels = np.arange(100) % 2
    preds = labels.copy()
    preds[[81, 83, 85, 87, 89, 91]] = 0
    report = sensitivity_report({"brightness": np.arange(100.0)}, labels, preds, CLASSES)
    assert findings_text(report) == f"- {report['findings'][0]['suggestion']}"
    assert "0.40 vs 0.88 overall" in findings_text(report)


def test_heatmap_renders() -> None:
    fig = sensitivity_heatmap(_small_report(), "brightness")
    image = figure_to_array(fig)
    width, height = fig.canvas.get_width_height()
    assert image.shape == (height, width, 3)
    assert image.dtype == np.uint8
    assert image.std() > 10
    assert "brightness" in fig.axes[0].get_title()


def test_confusion_matrix_figure(tmp_path: Path) -> None:
    fig = confusion_matrix_figure(np.array([[50, 3], [7, 40]]), CLASSES)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["50", "3", "7", "40"]
    assert fig.axes[0].get_xlabel() == "predicted"
    assert figure_to_array(fig).std() > 10

    path = save_figure(fig, tmp_path / "sub" / "cm.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="square"):
        confusion_matrix_figure(np.zeros((2, 3)), CLASSES)
