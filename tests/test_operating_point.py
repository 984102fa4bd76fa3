"""The operating point: known answers on hand-made scores, ties, reachability, class handling."""

import numpy as np
import pytest

from solar_defect.analysis.operating_point import (
    choose_threshold,
    operating_point,
    positive_index,
    threshold_metrics,
)

# Ranked by score: cumulative (true positives / predicted) at each threshold:
# .95: 1/1  .9: 2/2  .8: 2/3  .6: 3/4  .4: 3/5  .3: 4/6  .2: 4/7  .1: 4/8   (4 positives)
SCORES = np.array([0.95, 0.9, 0.8, 0.6, 0.4, 0.3, 0.2, 0.1])
POSITIVES = np.array([1, 1, 0, 1, 0, 1, 0, 0])


@pytest.mark.parametrize(
    ("target", "threshold"),
    [
        (0.25, 0.95),  # precision 1 already at the top score
        (0.5, 0.9),  # recall 0.5 with precision 1
        (0.75, 0.6),  # 0.6 (precision 3/4) beats 0.4 (3/5)
        (0.95, 0.3),  # only recall 1 reaches 0.95: 0.3 (4/6) beats 0.2 and 0.1
        (1.0, 0.3),
    ],
)
def test_known_thresholds(target, threshold):
    assert choose_threshold(SCORES, POSITIVES, target) == threshold


def test_metrics_at_the_threshold():
    metrics = threshold_metrics(SCORES, POSITIVES, 0.3)
    # predicted positive: the top 6, i.e. 4 true positives, 2 false positives, 2 true negatives
    assert metrics.accuracy == 6 / 8
    assert metrics.recall_positive == 1.0
    assert metrics.recall_negative == 2 / 4
    assert metrics.precision == 4 / 6


def test_precision_ties_go_to_the_higher_threshold():
    # .9: 0/1  .8: 1/2  .7: 1/3  .6: 2/4 -> with target 0.5, .8 and .6 tie at precision 1/2
    scores, positives = np.array([0.9, 0.8, 0.7, 0.6]), np.array([0, 1, 0, 1])
    assert choose_threshold(scores, positives, 0.5) == 0.8
    assert choose_threshold(scores, positives, 0.6) == 0.6


def test_equal_scores_are_one_threshold():
    # the two 0.8s are predicted together: 0.8 gives 1/2 with recall 0.5, as does 0.5 with 2/4
    scores, positives = np.array([0.8, 0.8, 0.5, 0.5]), np.array([1, 0, 1, 0])
    assert choose_threshold(scores, positives, 0.5) == 0.8
    assert threshold_metrics(scores, positives, 0.8).precision == 0.5


def test_recall_one_is_always_reachable():
    rng = np.random.default_rng(0)
    scores, positives = rng.random(200), rng.random(200) < 0.3
    threshold = choose_threshold(scores, positives, 1.0)
    assert threshold_metrics(scores, positives, threshold).recall_positive == 1.0
    assert threshold == scores[positives].min()  # the highest threshold that keeps them all


@pytest.mark.parametrize(
    ("scores", "positives", "target", "message"),
    [
        ([0.2, 0.8], [0, 1], 0.0, "target_recall"),
        ([0.2, 0.8], [0, 1], 1.5, "target_recall"),
        ([0.2, 0.8], [1, 1], 0.9, "both the positive and the negative"),
        ([0.2, 0.8], [0, 1, 1], 0.9, "equal length"),
        ([0.2, np.nan], [0, 1], 0.9, "NaN"),
        ([0.2, 0.8], [0, 2], 0.9, "0/1"),
    ],
)
def test_bad_input_is_rejected(scores, positives, target, message):
    with pytest.raises(ValueError, match=message):
        choose_threshold(scores, positives, target)


def test_positive_class_is_defective_or_the_last():
    assert positive_index(["functional", "defective"]) == 1
    assert positive_index(["defective", "functional"]) == 0
    assert positive_index(["ok", "cracked"]) == 1


def test_operating_point_entry_for_defective_first():
    # class 0 is `defective` here: its probabilities are the first column
    probs = np.stack([SCORES, 1 - SCORES], axis=1)
    labels = np.where(POSITIVES == 1, 0, 1)
    point = operating_point(probs, labels, ["defective", "functional"], 0.75)
    assert point["positive_class"] == "defective"
    assert point["threshold"] == 0.6
    assert point["val"] == {
        "accuracy": 6 / 8,
        "recall": {"defective": 0.75, "functional": 0.75},
        "precision": {"defective": 0.75},
    }
    assert "test" not in point


def test_operating_point_is_measured_on_the_test_split_at_the_val_threshold():
    probs = np.stack([1 - SCORES, SCORES], axis=1)
    test_probs = np.array([[0.5, 0.5], [0.45, 0.55], [0.2, 0.8], [0.9, 0.1]])
    point = operating_point(
        probs, POSITIVES, ["functional", "defective"], 0.75, test=(test_probs, [1, 0, 1, 0])
    )
    assert point["threshold"] == 0.6
    # test: P(defective) >= 0.6 only for the third cell
    assert point["test"] == {
        "accuracy": 3 / 4,
        "recall": {"functional": 1.0, "defective": 0.5},
        "precision": {"defective": 1.0},
    }


def test_more_than_two_classes_are_skipped_with_a_note():
    names = ["p0", "p1/3", "p2/3", "p1"]
    point = operating_point(np.full((4, 4), 0.25), np.arange(4), names)
    assert point["positive_class"] is None
    assert "two classes" in point["note"]
