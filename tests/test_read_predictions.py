"""`read_predictions` gives back, as arrays, what the sensitivity callback wrote to its CSV."""

from pathlib import Path

import numpy as np

from solar_defect.analysis.binning import sensitivity_report
from solar_defect.analysis.callback import write_predictions
from solar_defect.analysis.report import read_predictions
from solar_defect.data.datamodule import EvalSet


def test_predictions_csv_round_trips_and_rebuilds_the_report(tmp_path):
    rng = np.random.default_rng(0)
    names = ["functional", "defective"]
    features = {name: rng.random(12) * 50 for name in ("brightness", "clarity", "contrast")}
    data = EvalSet(
        root=tmp_path,
        rel_paths=[f"{names[i % 2]}/cell_{i:02d}.png" for i in range(12)],
        labels=np.arange(12) % 2,
        features=features,
        class_names=names,
    )
    index = np.array([0, 2, 3, 5, 7, 8, 9, 11])  # a subset, as one rank of several evaluates
    probs = rng.dirichlet([1.0, 1.0], size=len(index)).astype(np.float32)
    path = tmp_path / "epoch_003.csv"
    write_predictions(path, data, index, probs, list(features))

    read = read_predictions(path)

    assert read.class_names == names
    assert read.paths == [data.rel_paths[i] for i in index]
    np.testing.assert_array_equal(read.labels, data.labels[index])
    np.testing.assert_array_equal(read.probs, probs.astype(np.float64))
    np.testing.assert_array_equal(read.preds, probs.argmax(axis=1))
    assert list(read.features) == list(features)
    for name, values in features.items():
        np.testing.assert_array_equal(read.features[name], values[index])  # full precision
    report = sensitivity_report(
        {name: values[index] for name, values in features.items()},
        data.labels[index],
        probs.argmax(axis=1),
        names,
    )
    rebuilt = sensitivity_report(read.features, read.labels, read.preds, read.class_names)
    assert rebuilt == report


def test_the_pred_column_is_the_most_probable_class(tmp_path):
    data = EvalSet(Path(), ["a.png", "b.png"], np.array([0, 1]), {}, ["ok", "crack"])
    path = tmp_path / "p.csv"
    write_predictions(path, data, np.array([0, 1]), np.array([[0.2, 0.8], [0.9, 0.1]]), [])
    read = read_predictions(path)
    assert read.features == {}
    assert [read.class_names[p] for p in read.preds] == ["crack", "ok"]
