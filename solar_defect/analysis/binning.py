"""Quantile binning of image features and the per-bin, per-class accuracy report.

This is the numerical core of the sensitivity analysis in design.md: it works on plain numpy
arrays so that the validation callback, the evaluate CLI, a notebook and the tests all produce
the same report. The report only depends on the multiset of (features, label, pred) rows, not
on their order, so samples gathered from several ranks in any order give the same result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# Gaps are differences of two ratios; the slack keeps a gap of exactly `min_gap` in exact
# arithmetic (e.g. 0.60 - 0.55) from being dropped by float rounding.
_GAP_TOLERANCE = 1e-9


def _check_num_bins(num_bins: int) -> None:
    if isinstance(num_bins, bool) or not isinstance(num_bins, int | np.integer) or num_bins < 2:
        msg = f"num_bins must be >= 2 to compare bins with each other, got {num_bins}"
        raise ValueError(msg)


def quantile_edges(values: np.ndarray, num_bins: int = 5) -> np.ndarray:
    """Bin edges at equally spaced quantiles of `values` (numpy's default linear method).

    The quantile levels are ``k / num_bins``, which for 5 bins are exactly the design's
    ``[0, .2, .4, .6, .8, 1]`` (``np.linspace`` would give 0.6000000000000001).

    Args:
        values: 1-D finite feature values.
        num_bins: number of bins (>= 2).

    Returns:
        ``num_bins + 1`` non-decreasing float64 edges; the first is the minimum, the last the
        maximum.
    """
    _check_num_bins(num_bins)
    values = _as_feature(values, "values")
    levels = np.arange(num_bins + 1) / num_bins
    return np.quantile(values, levels)


def assign_bins(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index of each value: ``np.searchsorted(edges[1:num_bins], values, side="right")``.

    Only the inner edges matter, so values outside ``[edges[0], edges[-1]]`` fall in the first
    or last bin, and a value equal to an inner edge goes to the higher bin. A constant feature
    (all edges equal) puts everything in the last bin.

    Args:
        values: feature values.
        edges: ``num_bins + 1`` non-decreasing edges, as from `quantile_edges`.

    Returns:
        int64 bin indices in ``[0, num_bins)``, shaped like `values`.
    """
    edges = np.asarray(edges, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 3:
        msg = f"edges must be 1-D with at least 3 entries (2 bins), got shape {edges.shape}"
        raise ValueError(msg)
    if np.any(np.diff(edges) < 0):
        msg = f"edges must be non-decreasing, got {edges.tolist()}"
        raise ValueError(msg)
    num_bins = edges.size - 1
    bins = np.searchsorted(edges[1:num_bins], np.asarray(values, dtype=np.float64), side="right")
    return bins.astype(np.int64)


def _percent(k: int, num_bins: int) -> str:
    if (100 * k) % num_bins == 0:
        return f"{100 * k // num_bins}%"
    return f"{100 * k / num_bins:.1f}%"


def bin_names(num_bins: int) -> list[str]:
    """Names of the quantile ranges: ``["0%-20%", "20%-40%", ...]`` for 5 bins.

    Whole percentages are written without decimals, others with one (``"0%-33.3%"``).
    """
    _check_num_bins(num_bins)
    return [f"{_percent(b, num_bins)}-{_percent(b + 1, num_bins)}" for b in range(num_bins)]


def _as_feature(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        msg = f"{name} must be a non-empty 1-D array, got shape {array.shape}"
        raise ValueError(msg)
    if not np.all(np.isfinite(array)):
        msg = f"{name} contains NaN or infinite values; fix the feature computation first"
        raise ValueError(msg)
    return array


def _as_classes(values: Any, name: str, num_classes: int) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        msg = f"{name} must be a 1-D array of class indices, got shape {array.shape}"
        raise ValueError(msg)
    if not np.issubdtype(array.dtype, np.integer):
        msg = f"{name} must hold integer class indices, got dtype {array.dtype}"
        raise ValueError(msg)
    if array.size and (array.min() < 0 or array.max() >= num_classes):
        msg = (
            f"{name} must be class indices in [0, {num_classes}) for class_names of length "
            f"{num_classes}, got values in [{array.min()}, {array.max()}]"
        )
        raise ValueError(msg)
    return array.astype(np.int64)


def _ratio(numerator: int, denominator: int) -> float | None:
    return None if denominator == 0 else numerator / denominator


def _std(accuracies: list[float | None]) -> float | None:
    present = [a for a in accuracies if a is not None]
    return float(np.std(present)) if present else None


def _feature_report(
    values: np.ndarray,
    labels: np.ndarray,
    correct: np.ndarray,
    class_names: list[str],
    num_bins: int,
) -> dict[str, Any]:
    edges = quantile_edges(values, num_bins)
    bins = assign_bins(values, edges)
    names = bin_names(num_bins)
    rows = []
    for b in range(num_bins):
        in_bin = bins == b
        per_class = {}
        for c, cls in enumerate(class_names):
            mask = in_bin & (labels == c)
            count = int(mask.sum())
            per_class[cls] = {
                "count": count,
                "accuracy": _ratio(int(correct[mask].sum()), count),
            }
        count = int(in_bin.sum())
        rows.append(
            {
                "range": names[b],
                "count": count,
                "accuracy": _ratio(int(correct[in_bin].sum()), count),
                "per_class": per_class,
            }
        )
    std = {cls: _std([row["per_class"][cls]["accuracy"] for row in rows]) for cls in class_names}
    return {"edges": [float(e) for e in edges], "bins": rows, "std": std}


def _suggestion(feature: str, cls: str, where: str, rng: str, acc: float, overall: float) -> str:
    return (
        f"{cls} cells at {where} {feature} ({rng}) are weak ({acc:.2f} vs {overall:.2f} "
        f"overall): augment the {cls} class with {feature} changes toward {where} {feature}"
    )


def _findings(
    report_features: dict[str, dict[str, Any]],
    class_accuracy: dict[str, float | None],
    num_bins: int,
    min_count: int,
    min_gap: float,
) -> list[dict[str, Any]]:
    findings = []
    for feature, entry in report_features.items():
        for cls, overall in class_accuracy.items():
            if overall is None:
                continue
            candidates = [
                (row["per_class"][cls]["accuracy"], b)
                for b, row in enumerate(entry["bins"])
                if row["per_class"][cls]["count"] >= max(min_count, 1)
            ]
            if not candidates:
                continue
            accuracy, b = min(candidates)  # ties: the lowest bin, for determinism
            gap = overall - accuracy
            if gap <= 0 or gap < min_gap - _GAP_TOLERANCE:
                continue
            where = "low" if b == 0 else "high" if b == num_bins - 1 else "middle"
            row = entry["bins"][b]
            findings.append(
                {
                    "feature": feature,
                    "class": cls,
                    "bin": b,
                    "range": row["range"],
                    "low": entry["edges"][b],
                    "high": entry["edges"][b + 1],
                    "count": row["per_class"][cls]["count"],
                    "accuracy": accuracy,
                    "class_accuracy": overall,
                    "gap": gap,
                    "direction": where,
                    "suggestion": _suggestion(feature, cls, where, row["range"], accuracy, overall),
                }
            )
    # Stable sort: equal gaps keep feature order, then class order.
    return sorted(findings, key=lambda finding: -finding["gap"])


def sensitivity_report(
    features: Mapping[str, np.ndarray],
    labels: np.ndarray,
    preds: np.ndarray,
    class_names: Sequence[str],
    num_bins: int = 5,
    epoch: int | None = None,
    min_count: int = 10,
    min_gap: float = 0.05,
) -> dict[str, Any]:
    """Per-feature quantile bins with overall and per-class accuracy, as in design.md.

    Each feature is binned into `num_bins` quantile bins over all samples; for each bin the
    report gives the sample count and accuracy, overall and per class (null when a bin has no
    samples of that class), and per class the std (ddof 0) of its non-null bin accuracies.
    `findings` lists, per (feature, class), the worst bin holding at least `min_count` samples
    of that class when its accuracy is at least `min_gap` below the class's overall accuracy;
    largest gap first. They say which class to augment along which feature.

    Args:
        features: ``{feature name: values}``, each of length N, in the order to report.
        labels: N true class indices.
        preds: N predicted class indices.
        class_names: names of the class indices (index 0 first).
        num_bins: number of quantile bins (>= 2).
        epoch: stored as is, for the reader.
        min_count: smallest number of a class's samples in a bin for it to count as weak.
        min_gap: smallest drop below the class's overall accuracy that makes a finding.

    Returns:
        A dict of plain Python values (``json.dumps``-able) with keys ``epoch``,
        ``num_samples``, ``class_names``, ``num_bins``, ``features`` and ``findings``.

    Raises:
        ValueError: on mismatched lengths, bad class indices, non-finite features,
            duplicate class names or ``num_bins < 2``.
    """
    _check_num_bins(num_bins)
    class_names = [str(cls) for cls in class_names]
    if not class_names or len(set(class_names)) != len(class_names):
        msg = f"class_names must be non-empty and unique, got {class_names}"
        raise ValueError(msg)
    if min_count < 0 or min_gap < 0:
        msg = f"min_count and min_gap must be >= 0, got {min_count} and {min_gap}"
        raise ValueError(msg)
    labels = _as_classes(labels, "labels", len(class_names))
    preds = _as_classes(preds, "preds", len(class_names))
    num_samples = labels.size
    if num_samples == 0 or preds.size != num_samples:
        msg = (
            f"labels and preds must be non-empty and of equal length, got {num_samples} labels "
            f"and {preds.size} preds"
        )
        raise ValueError(msg)
    arrays = {name: _as_feature(values, f"feature {name!r}") for name, values in features.items()}
    lengths = {name: values.size for name, values in arrays.items() if values.size != num_samples}
    if lengths:
        msg = f"every feature needs {num_samples} values (one per label), got {lengths}"
        raise ValueError(msg)

    correct = labels == preds
    report_features = {
        name: _feature_report(values, labels, correct, class_names, num_bins)
        for name, values in arrays.items()
    }
    class_accuracy = {
        cls: _ratio(int(correct[labels == c].sum()), int((labels == c).sum()))
        for c, cls in enumerate(class_names)
    }
    return {
        "epoch": None if epoch is None else int(epoch),
        "num_samples": int(num_samples),
        "class_names": class_names,
        "num_bins": int(num_bins),
        "features": report_features,
        "findings": _findings(report_features, class_accuracy, num_bins, min_count, min_gap),
    }


def feature_entry(report: Mapping[str, Any], feature: str) -> dict[str, Any]:
    """The ``features[feature]`` part of a report, with an error naming the ones it has."""
    features = report["features"]
    if feature not in features:
        msg = f"feature {feature!r} is not in the report; it has {list(features)}"
        raise ValueError(msg)
    return features[feature]
