"""Quantile binning and the sensitivity report against hand-computed answers."""

import json

import numpy as np
import pytest

from solar_defect.analysis.binning import (
    assign_bins,
    bin_names,
    quantile_edges,
    sensitivity_report,
)

CLASSES = ["functional", "defective"]


def test_edges_match_design_levels() -> None:
    values = np.random.default_rng(0).normal(size=101)
    np.testing.assert_array_equal(
        quantile_edges(values), np.quantile(values, [0, 0.2, 0.4, 0.6, 0.8, 1])
    )


def test_ties_at_edges_go_to_higher_bin() -> None:
    values = np.arange(11.0)
    edges = quantile_edges(values)
    np.testing.assert_array_equal(edges, [0, 2, 4, 6, 8, 10])
    np.testing.assert_array_equal(assign_bins(values, edges), [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 4])


def test_values_outside_edges_fall_in_end_bins() -> None:
    edges = np.array([0.0, 1.0, 2.0])
    np.testing.assert_array_equal(assign_bins([-5.0, 0.5, 1.0, 9.0], edges), [0, 0, 1, 1])


def test_constant_feature_goes_to_last_bin() -> None:
    values = np.full(7, 3.0)
    edges = quantile_edges(values)
    np.testing.assert_array_equal(edges, np.full(6, 3.0))
    np.testing.assert_array_equal(assign_bins(values, edges), np.full(7, 4))


def test_bin_names() -> None:
    assert bin_names(5) == ["0%-20%", "20%-40%", "40%-60%", "60%-80%", "80%-100%"]
    assert bin_names(3) == ["0%-33.3%", "33.3%-66.7%", "66.7%-100%"]
    assert bin_names(4)[1] == "25%-50%"


@pytest.mark.parametrize("num_bins", [1, 0, 2.5])
def test_num_bins_below_two_is_rejected(num_bins: int) -> None:
    with pytest.raises(ValueError, match="num_bins must be >= 2"):
        sensitivity_report({"x": np.arange(4.0)}, [0, 1, 0, 1], [0, 1, 0, 1], CLASSES, num_bins)


def _small_case() -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    # Bins by x: {0,1} {2,3} {4,5} {6,7} {8,9}; no defective in bin 0, no functional in bin 4.
    x = np.arange(10.0)
    labels = np.array([0, 0, 0, 1, 0, 1, 0, 1, 1, 1])
    preds = np.array([0, 1, 0, 1, 0, 0, 0, 1, 0, 0])
    return {"x": x}, labels, preds


def test_report_matches_hand_computation() -> None:
    features, labels, preds = _small_case()
    report = sensitivity_report(features, labels, preds, CLASSES, epoch=3)
    # Linear interpolation at 9 * [.2, .4, .6, .8]; compared apart since 5.4 is not exact.
    assert report["features"]["x"].pop("edges") == pytest.approx([0, 1.8, 3.6, 5.4, 7.2, 9])

    def row(rng: str, n: int, acc: float, f: tuple, d: tuple) -> dict:
        per_class = {
            "functional": {"count": f[0], "accuracy": f[1]},
            "defective": {"count": d[0], "accuracy": d[1]},
        }
        return {"range": rng, "count": n, "accuracy": acc, "per_class": per_class}

    assert report == {
        "epoch": 3,
        "num_samples": 10,
        "class_names": CLASSES,
        "num_bins": 5,
        "features": {
            "x": {
                "bins": [
                    row("0%-20%", 2, 0.5, (2, 0.5), (0, None)),
                    row("20%-40%", 2, 1.0, (1, 1.0), (1, 1.0)),
                    row("40%-60%", 2, 0.5, (1, 1.0), (1, 0.0)),
                    row("60%-80%", 2, 1.0, (1, 1.0), (1, 1.0)),
                    row("80%-100%", 2, 0.0, (0, None), (2, 0.0)),
                ],
                # std over the non-null bins only
                "std": {"functional": float(np.std([0.5, 1, 1, 1])), "defective": 0.5},
            }
        },
        "findings": [],  # every class has < min_count samples per bin
    }


def _plain_types_only(value: object) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain_types_only(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain_types_only(v) for v in value)
    return value is None or type(value) in (int, float, str)


def test_report_is_plain_json_and_order_independent() -> None:
    rng = np.random.default_rng(5)
    n = 200
    features = {"a": rng.normal(size=n), "b": rng.integers(0, 4, size=n).astype(float)}
    labels = rng.integers(0, 2, size=n)
    preds = np.where(rng.random(n) < 0.8, labels, 1 - labels)
    report = sensitivity_report(features, labels, preds, CLASSES, min_count=3, min_gap=0.0)

    assert _plain_types_only(report)
    assert json.loads(json.dumps(report)) == report
    order = rng.permutation(n)
    shuffled = {k: v[order] for k, v in features.items()}
    same = sensitivity_report(
        shuffled, labels[order], preds[order], CLASSES, min_count=3, min_gap=0
    )
    assert same == report


def _weak_case() -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    # 100 samples, 5 bins of 20, 10 per class per bin; 6 of the 10 defective cells with the
    # highest x are misclassified: defective accuracy 0.4 there vs 44/50 = 0.88 overall.
    x = np.arange(100.0)
    labels = np.arange(100) % 2
    preds = labels.copy()
    preds[[81, 83, 85, 87, 89, 91]] = 0
    return {"x": x, "minus_x": -x}, labels, preds


def test_findings_name_the_weak_bin() -> None:
    features, labels, preds = _weak_case()
    findings = sensitivity_report(features, labels, preds, CLASSES)["findings"]

    assert [(f["feature"], f["direction"], f["bin"]) for f in findings] == [
        ("x", "high", 4),
        ("minus_x", "low", 0),
    ]
    first = findings[0]
    assert first["class"] == "defective"
    assert first["range"] == "80%-100%"
    assert first["count"] == 10
    assert first["accuracy"] == pytest.approx(0.4)
    assert first["class_accuracy"] == pytest.approx(0.88)
    assert first["gap"] == pytest.approx(0.48)
    assert (first["low"], first["high"]) == (pytest.approx(79.2), 99.0)
    assert "defective" in first["suggestion"]
    assert "high x" in first["suggestion"]


def test_findings_respect_min_count_and_sort_by_gap() -> None:
    features, labels, preds = _weak_case()
    assert sensitivity_report(features, labels, preds, CLASSES, min_count=11)["findings"] == []

    # A smaller weakness of the functional class in a middle bin comes after the larger one.
    preds[[40, 42]] = 1
    findings = sensitivity_report({"x": features["x"]}, labels, preds, CLASSES)["findings"]
    assert [(f["class"], f["direction"]) for f in findings] == [
        ("defective", "high"),
        ("functional", "middle"),
    ]
    assert findings[0]["gap"] > findings[1]["gap"]


def test_no_findings_when_all_bins_are_equal() -> None:
    labels = np.arange(100) % 2
    preds = labels.copy()
    preds[::20] = 1 - preds[::20]  # one error per class per bin of 20
    preds[1::20] = 1 - preds[1::20]
    report = sensitivity_report({"x": np.arange(100.0)}, labels, preds, CLASSES)
    assert report["findings"] == []
    assert report["features"]["x"]["std"] == {"functional": 0.0, "defective": 0.0}


def test_gap_equal_to_min_gap_counts() -> None:
    # Overall 24/40 = 0.6, worst bin 11/20 = 0.55: a gap of exactly 0.05 despite rounding.
    labels = np.zeros(40, dtype=int)
    preds = np.ones(40, dtype=int)
    preds[:11] = 0
    preds[20:33] = 0
    findings = sensitivity_report(
        {"x": np.arange(40.0)}, labels, preds, CLASSES, num_bins=2, min_gap=0.05
    )["findings"]
    assert [(f["class"], f["bin"], f["direction"]) for f in findings] == [("functional", 0, "low")]


@pytest.mark.parametrize(
    ("features", "labels", "preds", "match"),
    [
        ({"x": np.arange(4.0)}, [0, 1, 0], [0, 1, 0, 1], "equal length"),
        ({"x": np.arange(3.0)}, [0, 1, 0, 1], [0, 1, 0, 1], "needs 4 values"),
        (
            {"x": np.arange(4.0)},
            [0, 1, 2, 1],
            [0, 1, 0, 1],
            r"class indices in \[0, 2\)",
        ),
        (
            {"x": np.arange(4.0)},
            [0.0, 1.0, 0.0, 1.0],
            [0, 1, 0, 1],
            "integer class indices",
        ),
        ({"x": [0.0, np.nan, 1.0, 2.0]}, [0, 1, 0, 1], [0, 1, 0, 1], "NaN"),
    ],
)
def test_bad_inputs_are_rejected(features: dict, labels: list, preds: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        sensitivity_report(features, np.asarray(labels), np.asarray(preds), CLASSES)
