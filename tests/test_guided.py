"""augmentation=guided: findings of a sensitivity report become per-class, calibrated transforms."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from solar_defect.analysis.binning import sensitivity_report
from solar_defect.analysis.features import FEATURES, to_gray255
from solar_defect.data.augment import apply_transform
from solar_defect.data.guided import class_median, derive_recipe, load_report
from solar_defect.data.recipes import expansion_plan, parse_recipe
from solar_defect.errors import UserInputError
from solar_defect.train import train
from tests.conftest import synthetic_cell

CLASSES = ["functional", "defective"]
CONFIG = {"base": ["identity", "hflip"], "max_per_class": 1, "min_gap": 0.05}
N_FUNCTIONAL, N_DEFECTIVE = 120, 40


def cells(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Textured cells with brightness spread 0.25-0.8 and blur 0-2 px, 3:1 functional."""
    rng = np.random.default_rng(seed)
    labels = np.array([0] * N_FUNCTIONAL + [1] * N_DEFECTIVE)
    images = np.stack(
        [
            synthetic_cell(rng, bool(label), rng.uniform(0.25, 0.8), rng.uniform(0.0, 2.0))
            for label in labels
        ]
    )
    return images, labels


def feature(image: np.ndarray, name: str) -> float:
    return FEATURES[name](to_gray255(image))


def report_where(images, labels, wrong, features=("brightness",)) -> dict:
    """A report over `features` of a model wrong exactly on the samples `wrong` marks."""
    features = {name: np.array([feature(image, name) for image in images]) for name in features}
    preds = np.where(wrong, 1 - labels, labels)
    return sensitivity_report(features, labels, preds, CLASSES, min_count=3)


def test_defective_weak_when_bright_gets_brightening_into_the_weak_bin():
    images, labels = cells()
    brightness = np.array([feature(i, "brightness") for i in images])
    bright = brightness >= np.quantile(brightness, 0.8)
    report = report_where(images, labels, wrong=bright & (labels == 1))

    recipe, findings = derive_recipe(CONFIG, report, images, labels, CLASSES)

    [finding] = findings
    assert (finding["class"], finding["feature"], finding["direction"]) == (
        "defective",
        "brightness",
        "high",
    )
    gamma = recipe["class_params"]["defective"]["brightness"]["gamma"]
    assert gamma[1] < 1.0  # gamma below 1 brightens
    assert recipe["classes"]["functional"] == ["identity", "hflip"]
    # multiplier: 40 defective cells x 6 ~ 120 functional x 2
    assert recipe["classes"]["defective"] == ["identity", "hflip", *["brightness"] * 4]
    # the calibrated transform takes the defective class's median into the weak bin
    median = class_median(report, "brightness", "defective")
    typical = images[labels == 1][np.argmin(np.abs(brightness[labels == 1] - median))]
    mid_gamma = float(np.mean(gamma))
    rng = np.random.default_rng(0)
    moved = apply_transform("brightness", typical, rng, {"gamma": (mid_gamma, mid_gamma)})
    assert finding["low"] <= feature(moved, "brightness") <= finding["high"] * 1.02


def test_functional_weak_when_blurred_gets_blur_only():
    images, labels = cells(seed=1)
    clarity = np.array([feature(i, "clarity") for i in images])
    blurred = clarity <= np.quantile(clarity, 0.2)
    report = report_where(images, labels, wrong=blurred & (labels == 0), features=("clarity",))

    recipe, findings = derive_recipe(CONFIG, report, images, labels, CLASSES)

    assert [(f["class"], f["feature"], f["direction"]) for f in findings] == [
        ("functional", "clarity", "low")
    ]
    params = recipe["class_params"]["functional"]["clarity"]
    assert params["blur_prob"] == 1.0
    assert 0.3 <= params["sigma"][0] <= params["sigma"][1]
    assert recipe["classes"]["functional"] == ["identity", "hflip", "clarity"]
    # 120 x 3 functional against 40 x 9 defective: flips repeated, as there is no random transform
    assert len(recipe["classes"]["defective"]) == 9


def test_no_weak_bin_gives_the_balancing_only_recipe():
    images, labels = cells()
    report = report_where(images, labels, wrong=np.zeros(len(labels), bool))
    assert report["findings"] == []

    recipe, findings = derive_recipe(CONFIG, report, images, labels, CLASSES)

    assert findings == []
    assert recipe["class_params"] == {}
    assert recipe["classes"]["functional"] == ["identity", "hflip"]
    assert recipe["classes"]["defective"] == ["identity", "hflip"] * 3
    source, _ = expansion_plan(labels, parse_recipe(recipe, CLASSES), CLASSES)
    assert np.bincount(labels[source]).tolist() == [240, 240]


def test_max_per_class_and_min_gap_filter_the_findings():
    images, labels = cells()
    brightness = np.array([feature(i, "brightness") for i in images])
    dark = brightness <= np.quantile(brightness, 0.2)
    # both classes weak when dark, seen along brightness and along the correlated contrast
    report = report_where(images, labels, wrong=dark, features=("brightness", "contrast"))
    assert len(report["findings"]) == 4

    _, one_each = derive_recipe({**CONFIG, "max_per_class": 1}, report, images, labels, CLASSES)
    _, two_each = derive_recipe({**CONFIG, "max_per_class": 2}, report, images, labels, CLASSES)
    _, none = derive_recipe({**CONFIG, "min_gap": 1.0}, report, images, labels, CLASSES)

    assert sorted(f["class"] for f in one_each) == sorted(CLASSES)
    largest = {c: max(f["gap"] for f in report["findings"] if f["class"] == c) for c in CLASSES}
    assert all(f["gap"] == largest[f["class"]] for f in one_each)
    assert len(two_each) == 4
    assert none == []


def test_report_of_other_classes_is_refused():
    images, labels = cells()
    report = report_where(images, labels, wrong=np.zeros(len(labels), bool))
    report["class_names"] = ["ok", "cracked"]
    with pytest.raises(UserInputError, match="differ from the data's"):
        derive_recipe(CONFIG, report, images, labels, CLASSES)


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "not found"), ("{not json", "is not JSON"), ('{"epoch": 1}', "is not a sensitivity")],
)
def test_bad_report_file_gives_one_clear_error(tmp_path, content, message):
    path = tmp_path / "latest.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserInputError, match=message):
        load_report(path)


def test_run_directory_means_its_validation_report(tmp_path):
    (tmp_path / "sensitivity").mkdir()
    report = {"class_names": CLASSES, "features": {}, "findings": [], "epoch": 3}
    (tmp_path / "sensitivity" / "latest.json").write_text(json.dumps({**report, "epoch": 9}))
    (tmp_path / "sensitivity" / "validate.json").write_text(json.dumps(report))
    assert load_report(tmp_path)["epoch"] == 3
    with pytest.raises(UserInputError, match="has no sensitivity"):
        load_report(tmp_path / "sensitivity")


def test_guided_run_writes_a_recipe_that_reuses_as_a_plain_one(
    compose_config, tiny_overrides, tiny_checkpoint
):
    baseline_run = tiny_checkpoint.parent.parent
    cfg = compose_config(
        [*tiny_overrides, "augmentation=guided", f"guided.report={baseline_run}", "debug=fdr"]
    )

    results = train(cfg)

    written = Path(cfg.paths.output_dir) / "guided_recipe.yaml"
    text = written.read_text()
    assert text.startswith("# @package data.augmentation\n")
    recipe = parse_recipe(yaml.safe_load(text), CLASSES)
    assert recipe.mode == "expand"
    counts = results["train_counts"]
    per_class = {c: len(recipe.classes[c]) * 8 for c in CLASSES}  # 8 training cells a class
    assert counts == per_class
