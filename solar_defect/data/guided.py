"""Sensitivity-guided augmentation: derive a per-class recipe from a sensitivity report.

The seed read its sensitivity tables and chose brightness and clarity augmentation for the weak
class by hand. This module closes that loop:

1. Take the report's findings (a class, a feature and the bin [low, high] where that class is
   weakest), keep those at least ``min_gap`` below the class's accuracy, and per class the
   ``max_per_class`` largest gaps.
2. Read the class's median m of the feature off the report's per-class bin counts.
3. Calibrate the feature's transform (brightness: gamma; contrast: factor; clarity: Gaussian
   blur when the weak bin is less sharp, unsharp mask when sharper) on that class's training
   images at training resolution: for a grid of strengths, the median ratio of the feature
   after to before.
4. The strength range is the one whose ratio takes m to low/m ... high/m, so the transform
   moves typical images of the class into the weak bin. The transform joins the class's
   ``base`` list, with these parameters for that class only (``class_params``).
5. Every class's list is then lengthened to about the largest class's count (expand to parity).

The result is a plain expand recipe; :func:`recipe_yaml` writes it so it can be reused as
``conf/augmentation/<name>.yaml``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from solar_defect.analysis.features import FEATURES, to_gray255
from solar_defect.data.augment import apply_transform
from solar_defect.data.recipes import expand_to_parity, parse_recipe
from solar_defect.errors import UserInputError

log = logging.getLogger(__name__)

GUIDED_KEYS = ("name", "mode", "report", "base", "max_per_class", "min_gap", "calibration_images")

# Strength grids per (feature, arm): the transform parameters a strength s sets, and s's values.
_Arm = tuple[str, Callable[[float], dict[str, Any]], np.ndarray]
_ARMS: dict[str, dict[str, _Arm]] = {
    "brightness": {
        "only": ("brightness", lambda s: {"gamma": (s, s)}, np.geomspace(0.25, 4.0, 33)),
    },
    "contrast": {
        "only": ("contrast", lambda s: {"factor": (s, s)}, np.linspace(0.25, 2.5, 46)),
    },
    "clarity": {
        "blur": (
            "clarity",
            lambda s: {"blur_prob": 1.0, "sigma": (s, s)},
            np.geomspace(0.3, 4.0, 27),
        ),
        "sharpen": (
            "clarity",
            lambda s: {"blur_prob": 0.0, "sigma": (1.0, 1.0), "amount": (s, s)},
            np.linspace(0.0, 4.0, 41),
        ),
    },
}


def load_report(path: str | Path) -> dict[str, Any]:
    """A sensitivity report from its JSON file, or from a run directory (its validation report).

    Raises:
        UserInputError: the path is missing, not JSON, or not a sensitivity report.
    """
    path = Path(path)
    if path.is_dir():
        sensitivity = path / "sensitivity"
        candidates = [sensitivity / "validate.json", sensitivity / "latest.json"]
        found = [p for p in candidates if p.is_file()]
        if not found:
            raise UserInputError(
                f"guided augmentation: {path} has no sensitivity/validate.json or latest.json: "
                "give a finished run's directory or its sensitivity/latest.json"
            )
        path = found[0]
    if not path.is_file():
        raise UserInputError(
            f"guided augmentation: report {path} not found: give a run's "
            "sensitivity/latest.json (or the run directory) as guided.report=PATH"
        )
    try:
        report = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserInputError(f"guided augmentation: report {path} is not JSON ({err})") from err
    missing = [k for k in ("class_names", "features", "findings") if k not in report]
    if not isinstance(report, dict) or missing:
        raise UserInputError(
            f"guided augmentation: {path} is not a sensitivity report (missing {missing}): "
            "give a run's sensitivity/latest.json"
        )
    return report


def class_median(report: Mapping[str, Any], feature: str, class_name: str) -> float:
    """The class's median feature value, linear within the report's quantile bins."""
    entry = report["features"][feature]
    edges = np.asarray(entry["edges"], dtype=np.float64)
    counts = np.array([row["per_class"][class_name]["count"] for row in entry["bins"]], float)
    if counts.sum() == 0:
        raise UserInputError(f"guided augmentation: the report has no {class_name!r} samples")
    cumulative = np.concatenate([[0.0], np.cumsum(counts)]) / counts.sum()
    b = int(np.clip(np.searchsorted(cumulative, 0.5, side="left") - 1, 0, len(counts) - 1))
    share = (0.5 - cumulative[b]) / max(cumulative[b + 1] - cumulative[b], 1e-12)
    return float(edges[b] + share * (edges[b + 1] - edges[b]))


def ratio_curve(images: np.ndarray, feature: str, arm: str, seed: int = 0) -> np.ndarray:
    """Median over `images` of feature(transformed) / feature(original), per grid strength."""
    transform, params_of, grid = _ARMS[feature][arm]
    measure = FEATURES[feature]
    before = np.array([measure(to_gray255(image)) for image in images])
    keep = before > 0
    ratios = []
    for strength in grid:
        rng = np.random.default_rng(seed)
        after = np.array(
            [
                measure(to_gray255(apply_transform(transform, image, rng, params_of(strength))))
                for image in images[keep]
            ]
        )
        ratios.append(float(np.median(after / before[keep])))
    return np.array(ratios)


def strength_for(ratios: np.ndarray, grid: np.ndarray, target: float) -> float:
    """The grid strength whose ratio is `target`, interpolated (clipped to the grid's ends)."""
    order = np.argsort(ratios, kind="stable")
    return float(np.interp(target, ratios[order], grid[order]))


def _strength_range(
    images: np.ndarray, feature: str, arm: str, low: float, high: float
) -> tuple[float, float]:
    grid = _ARMS[feature][arm][2]
    ratios = ratio_curve(images, feature, arm)
    a, b = sorted((strength_for(ratios, grid, low), strength_for(ratios, grid, high)))
    return a, b


def transform_for_finding(
    finding: Mapping[str, Any], median: float, images: np.ndarray
) -> tuple[str, dict[str, Any]]:
    """(transform name, parameters) that move `images` of median `median` into the weak bin."""
    feature = finding["feature"]
    low, high = finding["low"] / median, finding["high"] / median
    if feature != "clarity":
        transform, _, _ = _ARMS[feature]["only"]
        a, b = _strength_range(images, feature, "only", low, high)
        key = "gamma" if feature == "brightness" else "factor"
        return transform, {key: [round(a, 4), round(b, 4)]}
    if high <= 1.0:  # the weak bin is less sharp than the class: blur only
        a, b = _strength_range(images, feature, "blur", low, high)
        return "clarity", {"blur_prob": 1.0, "sigma": [round(a, 4), round(b, 4)]}
    if low >= 1.0:  # sharper: unsharp mask only
        a, b = _strength_range(images, feature, "sharpen", low, high)
        return "clarity", {
            "blur_prob": 0.0,
            "sigma": [1.0, 1.0],
            "amount": [round(a, 4), round(b, 4)],
        }
    # the class's median lies inside the weak bin: blur or sharpen, each to its edge
    sigma = _strength_range(images, feature, "blur", low, 1.0)
    amount = _strength_range(images, feature, "sharpen", 1.0, high)
    return "clarity", {
        "blur_prob": 0.5,
        "sigma": [round(max(sigma[0], 0.3), 4), round(sigma[1], 4)],
        "amount": [round(amount[0], 4), round(amount[1], 4)],
    }


def chosen_findings(
    report: Mapping[str, Any], min_gap: float, max_per_class: int
) -> list[dict[str, Any]]:
    """The findings that shape the recipe: gap >= min_gap, the largest `max_per_class` a class."""
    taken: dict[str, int] = {}
    chosen = []
    for finding in sorted(report["findings"], key=lambda f: -f["gap"]):
        cls = finding["class"]
        if finding["gap"] < min_gap or finding["feature"] not in _ARMS:
            continue
        if taken.get(cls, 0) >= max_per_class:
            continue
        taken[cls] = taken.get(cls, 0) + 1
        chosen.append(dict(finding))
    return chosen


def check_guided_config(cfg: Mapping[str, Any]) -> None:
    """One clear line for each bad key or value of an `augmentation=guided` config."""
    unknown = [k for k in cfg if k not in GUIDED_KEYS]
    if unknown:
        raise UserInputError(
            f"augmentation=guided: unknown key(s) {unknown}; it takes: {', '.join(GUIDED_KEYS)}"
        )
    base = cfg.get("base")
    if not isinstance(base, Sequence) or isinstance(base, str) or not base:
        raise UserInputError(
            f"guided.base must be a non-empty list of transforms, got {base!r}; "
            "e.g. [identity, hflip]"
        )
    if not cfg.get("report"):
        raise UserInputError(
            "augmentation=guided needs guided.report=PATH: a previous run's directory or its "
            "sensitivity/latest.json"
        )
    max_per_class = cfg.get("max_per_class", 1)
    if isinstance(max_per_class, bool) or not isinstance(max_per_class, int) or max_per_class < 0:
        raise UserInputError(f"guided.max_per_class must be an integer >= 0, got {max_per_class!r}")
    min_gap = cfg.get("min_gap", 0.05)
    if isinstance(min_gap, bool) or not isinstance(min_gap, int | float) or not 0 <= min_gap <= 1:
        raise UserInputError(f"guided.min_gap must be in [0, 1], got {min_gap!r}")
    calibration = cfg.get("calibration_images", 64)
    if isinstance(calibration, bool) or not isinstance(calibration, int) or calibration < 1:
        raise UserInputError(
            f"guided.calibration_images must be an integer >= 1, got {calibration!r}"
        )


def derive_recipe(
    cfg: Mapping[str, Any],
    report: Mapping[str, Any],
    images: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    seed: int = 0,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The guided expand recipe (a plain recipe mapping) and the findings it answers.

    Args:
        cfg: the `augmentation=guided` config (``base``, ``max_per_class``, ``min_gap``,
            ``calibration_images``).
        report: a sensitivity report of a model trained on the same classes.
        images: training images (N, H, W) uint8 at training resolution.
        labels: their class indices.
        class_names: class names by index; must equal the report's.
        seed: picks the calibration images.

    Each returned finding carries the ``transform`` and ``params`` it led to.
    """
    if list(report["class_names"]) != list(class_names):
        raise UserInputError(
            f"guided augmentation: the report's classes {report['class_names']} differ from the "
            f"data's {list(class_names)}: use a report of a run with the same classes"
        )
    base = list(cfg.get("base") or ["identity"])
    classes: dict[str, list[str]] = {c: list(base) for c in class_names}
    class_params: dict[str, dict[str, Any]] = {}
    findings = chosen_findings(report, cfg.get("min_gap", 0.05), cfg.get("max_per_class", 1))
    rng = np.random.default_rng(seed)
    for finding in findings:
        cls = finding["class"]
        members = np.flatnonzero(labels == list(class_names).index(cls))
        count = min(int(cfg.get("calibration_images", 64)), len(members))
        sample = images[rng.choice(members, size=count, replace=False)]
        median = class_median(report, finding["feature"], cls)
        transform, params = transform_for_finding(finding, median, sample)
        classes[cls].append(transform)
        class_params.setdefault(cls, {})[transform] = params
        finding["transform"], finding["params"] = transform, params
        log.info("Guided: %s gets %s %s (%s)", cls, transform, params, finding["suggestion"])
    recipe = {
        "name": str(cfg.get("name", "guided")),
        "mode": "expand",
        "classes": classes,
        "class_params": class_params,
    }
    counts = np.bincount(labels, minlength=len(class_names))
    balanced = expand_to_parity(parse_recipe(recipe, class_names), counts, class_names)
    recipe["classes"] = {c: list(balanced.classes[c]) for c in class_names}
    return recipe, findings


def recipe_yaml(
    recipe: Mapping[str, Any], findings: Sequence[Mapping[str, Any]], report_path: str
) -> str:
    """The derived recipe as a Hydra augmentation file, with the findings it came from."""
    lines = [
        "# @package data.augmentation",
        f"# Derived by augmentation=guided from {report_path}.",
        "# Reuse: copy to conf/augmentation/<name>.yaml and train with augmentation=<name>.",
    ]
    for finding in findings:
        lines.append(
            f"# {finding['class']} weak at {finding['feature']} {finding['range']} "
            f"[{finding['low']:.4g}, {finding['high']:.4g}] (accuracy {finding['accuracy']:.2f} "
            f"vs {finding['class_accuracy']:.2f}) -> {finding['transform']} {finding['params']}"
        )
    if not findings:
        lines.append("# No weak bin passed the filters: the base list and class balancing only.")
    return "\n".join(lines) + "\n" + yaml.safe_dump(dict(recipe), sort_keys=False)
