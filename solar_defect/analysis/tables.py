"""Markdown views of a sensitivity report, laid out like the seed's tables."""

from __future__ import annotations

from typing import Any

from solar_defect.analysis.binning import feature_entry

# An en dash marks a null accuracy or std (no samples of that class in the bin).
NULL_CELL = "\u2013"


def _number(value: float | None) -> str:
    return NULL_CELL if value is None else f"{value:.4f}"


def seed_table(report: dict[str, Any], feature: str, with_counts: bool = True) -> str:
    """One feature of a report as a markdown table: bins as rows, classes as columns.

    Cells read ``0.7273 (150)``: the class's accuracy in the bin (4 decimals) and, with
    `with_counts`, the number of its samples there; an en dash when there are none. The last row is
    the per-class std across bins.

    Args:
        report: a dict from `binning.sensitivity_report` (or its JSON file, loaded).
        feature: one of the report's features.
        with_counts: add the counts in brackets, and ``(n)`` to the class headers.

    Returns:
        The table, one line per row, without a trailing newline.
    """
    entry = feature_entry(report, feature)
    classes = report["class_names"]
    suffix = " (n)" if with_counts else ""
    lines = [
        "| " + " | ".join([f"{feature} bin"] + [f"{cls}{suffix}" for cls in classes]) + " |",
        "|" + "---|" * (len(classes) + 1),
    ]
    for row in entry["bins"]:
        cells = [row["range"]]
        for cls in classes:
            stats = row["per_class"][cls]
            cell = _number(stats["accuracy"])
            if with_counts and stats["accuracy"] is not None:
                cell += f" ({stats['count']})"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(
        "| " + " | ".join(["std"] + [_number(entry["std"][cls]) for cls in classes]) + " |"
    )
    return "\n".join(lines)


def findings_text(report: dict[str, Any]) -> str:
    """The report's findings as a markdown bullet list of suggestions, largest gap first."""
    findings = report.get("findings", [])
    if not findings:
        return "No weak bins were found: no class is clearly worse in any feature bin."
    return "\n".join(f"- {finding['suggestion']}" for finding in findings)
