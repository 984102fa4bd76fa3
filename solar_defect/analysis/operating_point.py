"""The decision threshold on P(defective) that reaches a target defective recall.

The classifier's argmax weighs both errors alike. An inspection line usually cares more about
missing a defective cell than about re-checking a good one, so it fixes the defective recall
(0.95 by default) and asks which threshold gets there with the fewest false alarms, i.e. the
best precision. Pure numpy, so a notebook and the tests can feed it hand-made arrays.

The rule is "positive iff score >= threshold"; thresholds are the observed scores, so the
lowest one predicts every sample positive and a recall of 1.0 is always reachable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

POSITIVE_CLASS = "defective"


@dataclass(frozen=True)
class ThresholdMetrics:
    """Binary metrics of "positive iff score >= threshold"."""

    threshold: float
    accuracy: float
    recall_positive: float
    recall_negative: float
    precision: float | None  # None when nothing is predicted positive


def _check_target(target_recall: float) -> None:
    if not 0.0 < target_recall <= 1.0:
        msg = f"target_recall must be in (0, 1], got {target_recall}"
        raise ValueError(msg)


def _as_binary(scores: Any, positives: Any) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    positives = np.asarray(positives)
    if scores.ndim != 1 or positives.shape != scores.shape:
        msg = (
            f"scores and positives must be 1-D and of equal length, got shapes {scores.shape} "
            f"and {positives.shape}"
        )
        raise ValueError(msg)
    if not np.all(np.isfinite(scores)):
        msg = "scores contain NaN or infinite values"
        raise ValueError(msg)
    if not np.all((positives == 0) | (positives == 1)):
        msg = "positives must be booleans or 0/1 labels (1 = the positive class)"
        raise ValueError(msg)
    positives = positives.astype(bool)
    if positives.all() or not positives.any():
        msg = "an operating point needs samples of both the positive and the negative class"
        raise ValueError(msg)
    return scores, positives


def threshold_metrics(scores: Any, positives: Any, threshold: float) -> ThresholdMetrics:
    """Accuracy, both recalls and the positive precision at one threshold.

    Args:
        scores: (N,) scores of the positive class, e.g. P(defective).
        positives: (N,) booleans or 0/1, true for samples of the positive class.
        threshold: a sample is predicted positive when its score is >= this.
    """
    scores, positives = _as_binary(scores, positives)
    predicted = scores >= threshold
    true_pos = int(np.sum(predicted & positives))
    true_neg = int(np.sum(~predicted & ~positives))
    num_predicted = int(predicted.sum())
    return ThresholdMetrics(
        threshold=float(threshold),
        accuracy=(true_pos + true_neg) / scores.size,
        recall_positive=true_pos / int(positives.sum()),
        recall_negative=true_neg / int((~positives).sum()),
        precision=true_pos / num_predicted if num_predicted else None,
    )


def choose_threshold(scores: Any, positives: Any, target_recall: float = 0.95) -> float:
    """The threshold with the best precision among those reaching `target_recall`.

    Ties in precision go to the higher threshold (fewer positive calls for the same quality).

    Args:
        scores: (N,) scores of the positive class.
        positives: (N,) booleans or 0/1, true for samples of the positive class.
        target_recall: the smallest acceptable recall of the positive class, in (0, 1].

    Returns:
        One of the scores; predicting "positive iff score >= it" meets the target.

    Raises:
        ValueError: on bad shapes, non-finite scores, a single class or a target outside (0, 1].
    """
    _check_target(target_recall)
    scores, positives = _as_binary(scores, positives)
    order = np.argsort(-scores, kind="stable")
    ranked = scores[order]  # descending
    true_pos = np.cumsum(positives[order])
    num_predicted = np.arange(1, ranked.size + 1)
    # A threshold takes every sample with an equal score: only the last of each run counts.
    last = np.flatnonzero(np.append(ranked[1:] != ranked[:-1], True))
    recall = true_pos[last] / true_pos[-1]
    precision = true_pos[last] / num_predicted[last]
    # Thresholds descend along `last`, and argmax takes the first maximum: the higher threshold.
    best = int(np.argmax(np.where(recall >= target_recall, precision, -1.0)))
    return float(ranked[last[best]])


def positive_index(class_names: Sequence[str]) -> int:
    """The class an operating point is about: the one named `defective`, else the last one."""
    names = list(class_names)
    return names.index(POSITIVE_CLASS) if POSITIVE_CLASS in names else len(names) - 1


def _entry(metrics: ThresholdMetrics, class_names: list[str], positive: int) -> dict[str, Any]:
    recall = [metrics.recall_negative, metrics.recall_negative]
    recall[positive] = metrics.recall_positive
    return {
        "accuracy": metrics.accuracy,
        "recall": dict(zip(class_names, recall, strict=True)),
        "precision": {class_names[positive]: metrics.precision},
    }


def operating_point(
    probs: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    target_recall: float = 0.95,
    test: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, Any]:
    """The `operating_point` entry of `metrics.json`, chosen on (`probs`, `labels`).

    Args:
        probs: (N, C) class probabilities of the split the threshold is chosen on (validation).
        labels: (N,) true class indices.
        class_names: the C class names.
        target_recall: the recall of the positive class to reach.
        test: optional (probs, labels) of a held-out split, measured at the chosen threshold:
            the validation numbers are optimistic, since the threshold was fitted there.

    Returns:
        ``{"positive_class", "target_recall", "threshold", "val": {"accuracy", "recall":
        {class: r}, "precision": {positive class: p}}[, "test": {...}]}``; for more than two
        classes only ``positive_class: None``, ``target_recall`` and a ``note``.
    """
    names = [str(name) for name in class_names]
    _check_target(target_recall)
    if len(names) != 2:
        return {
            "positive_class": None,
            "target_recall": target_recall,
            "note": (
                f"a decision threshold needs two classes, these are {len(names)} "
                f"({', '.join(names)})"
            ),
        }
    positive = positive_index(names)
    scores = np.asarray(probs)[:, positive]
    positives = np.asarray(labels) == positive
    threshold = choose_threshold(scores, positives, target_recall)
    result: dict[str, Any] = {
        "positive_class": names[positive],
        "target_recall": target_recall,
        "threshold": threshold,
        "val": _entry(threshold_metrics(scores, positives, threshold), names, positive),
    }
    if test is not None:
        test_probs, test_labels = test
        measured = threshold_metrics(
            np.asarray(test_probs)[:, positive], np.asarray(test_labels) == positive, threshold
        )
        result["test"] = _entry(measured, names, positive)
    return result
