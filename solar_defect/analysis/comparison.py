"""`solar-compare`: one table of many runs, seeds pooled, laid out like the seed's tables 3 and 4.

Runs are grouped into *settings* by their command-line overrides (`overrides` in
`metrics.json`) without the `seed` override: runs that differ only in `seed` are repeats of one
setting, anything else the user changed makes a new setting. Order and `+`/`++` prefixes do not
matter. Per setting the table gives the mean and the sample standard deviation (ddof=1, shown
only when there are two or more seeds) of each metric, as percentages, with the number of seeds.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from solar_defect.cli import user_errors
from solar_defect.errors import UserInputError

METRICS_FILE = "metrics.json"
SEED_KEY = "seed"
# An en dash marks a metric that is missing (or NaN) in some run of the setting.
NULL_CELL = "\u2013"

log = logging.getLogger(__name__)


def find_runs(paths: Iterable[str | Path]) -> list[Path]:
    """Every run directory (a folder holding `metrics.json`) under `paths`, in natural order.

    Natural order keeps a multirun's jobs as launched (0, 1, ..., 10), not as strings sort.

    Raises:
        UserInputError: a path does not exist or holds no run.
    """
    runs: dict[Path, None] = {}
    for path in map(Path, paths):
        if not path.exists():
            raise UserInputError(f"{path} does not exist: give a run or multirun directory")
        found = [path.parent] if path.is_file() else [m.parent for m in path.rglob(METRICS_FILE)]
        if not found:
            raise UserInputError(
                f"no runs under {path}: a run directory holds {METRICS_FILE}, which solar-train "
                "writes when a run ends"
            )
        runs.update(dict.fromkeys(sorted(found, key=_natural_key)))
    return list(runs)


def load_run(run_dir: Path) -> dict[str, Any]:
    """The parsed `metrics.json` of one run; a clear error when it is not one."""
    path = run_dir / METRICS_FILE
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UserInputError(f"cannot read {path}: {err}") from err
    if not isinstance(payload, dict) or not isinstance(payload.get("val"), dict):
        raise UserInputError(f"{path} is not a solar-train metrics file (no 'val' metrics)")
    return payload


def comparison_rows(run_dirs: Sequence[str | Path], stage: str = "val") -> list[dict[str, Any]]:
    """One row per setting: seeds pooled into mean and std, settings in order of first run.

    Args:
        run_dirs: run directories, each holding `metrics.json`.
        stage: which metrics to compare, `val` (best checkpoint) or `test`.

    Returns:
        Rows with `setting` (the overrides that set it apart from the other settings;
        `(common)` when it has only the shared ones, `(defaults)` when it has none),
        `overrides` (all but `seed`), `common` (overrides shared by every setting, when there
        are two or more), `class_names`, `n_seeds`, `seeds`, `runs`, `train_counts` ({class:
        count, or "min-max" when seeds disagree}) and `metrics` ({name: (mean, std)}, fractions,
        std NaN for one seed). Class names come from the runs' `train_counts` and metric keys.
    """
    runs = [(Path(d), load_run(Path(d))) for d in run_dirs]
    # a Ctrl-C'd run reports its last epoch, not its best checkpoint: not comparable
    interrupted = [str(d) for d, payload in runs if payload.get("interrupted")]
    if interrupted:
        log.warning("Leaving out interrupted run(s): %s", ", ".join(interrupted))
        runs = [(d, payload) for d, payload in runs if not payload.get("interrupted")]
    if not runs:
        raise UserInputError("every run given was interrupted: resume them with ckpt_path=last")
    classes = _class_names([payload for _, payload in runs], stage)
    groups: dict[frozenset[str], list[tuple[Path, dict[str, Any]]]] = {}
    for run_dir, payload in runs:
        groups.setdefault(_setting_key(payload), []).append((run_dir, payload))
    # Overrides every setting shares are said once, above the table; one setting keeps its own.
    common = frozenset.intersection(*groups) if len(groups) > 1 else frozenset()

    rows = []
    for members in groups.values():
        overrides = _setting_overrides(members[0][1])
        distinct = [o for o in overrides if _normalise(o) not in common]
        payloads = [payload for _, payload in members]
        rows.append(
            {
                "setting": " ".join(distinct) or ("(common)" if common else "(defaults)"),
                "overrides": overrides,
                "common": [o for o in overrides if _normalise(o) in common],
                "class_names": classes,
                "n_seeds": len(members),
                "seeds": [_seed(p) for p in payloads],
                "runs": [str(run_dir) for run_dir, _ in members],
                "train_counts": {c: _count(payloads, c) for c in classes},
                "metrics": {
                    name: _mean_std([(p.get(stage) or {}).get(f"{stage}/{key}") for p in payloads])
                    for name, key in _metric_keys(classes)
                },
            }
        )
    return rows


def comparison_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as a markdown table: cells read `89.13 ± 0.52` (percent, mean ± sample std)."""
    if not rows:
        return "No runs to compare."
    classes = rows[0]["class_names"]
    names = [name for name, _ in _metric_keys(classes)]
    header = [
        "setting",
        f"train counts ({' + '.join(classes)})",
        *(_label(name) for name in names),
        "seeds",
    ]
    lines = []
    if rows[0]["common"]:
        lines += ["Common overrides: `" + " ".join(rows[0]["common"]) + "`", ""]
    lines += ["| " + " | ".join(header) + " |", "|---|---|" + "---:|" * (len(names) + 1)]
    for row in rows:
        counts = " + ".join(str(row["train_counts"][c]) for c in classes)
        cells = [_percent_cell(*row["metrics"][name]) for name in names]
        setting = row["setting"].replace("|", "\\|")
        lines.append(f"| {setting} | {counts} | " + " | ".join(cells) + f" | {row['n_seeds']} |")
    lines += ["", "Percent over seeds: mean ± sample std (ddof=1); no std for a single seed."]
    return "\n".join(lines)


def write_comparison(rows: Sequence[dict[str, Any]], out_dir: str | Path) -> tuple[Path, Path]:
    """Write `comparison.md` and `comparison.csv` (fractions, one row per setting) to `out_dir`.

    Returns:
        The paths of the markdown and the CSV file.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md_path, csv_path = out / "comparison.md", out / "comparison.csv"
    md_path.write_text(comparison_markdown(rows) + "\n")
    classes = rows[0]["class_names"] if rows else []
    names = [name for name, _ in _metric_keys(classes)]
    fields = [
        "setting",
        "n_seeds",
        *(f"train_count_{c}" for c in classes),
        *(f"{name}_{stat}" for name in names for stat in ("mean", "std")),
        "seeds",
        "overrides",
    ]
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            record: dict[str, Any] = {
                "setting": row["setting"],
                "n_seeds": row["n_seeds"],
                "seeds": " ".join(str(s) for s in row["seeds"]),
                "overrides": " ".join(row["overrides"]),
            }
            for c in classes:
                record[f"train_count_{c}"] = row["train_counts"][c]
            for name in names:
                mean, std = row["metrics"][name]
                # NaN is left empty: spreadsheets and pandas read it as missing.
                record[f"{name}_mean"] = "" if math.isnan(mean) else repr(mean)
                record[f"{name}_std"] = "" if math.isnan(std) else repr(std)
            writer.writerow(record)
    return md_path, csv_path


def _metric_keys(classes: Sequence[str]) -> list[tuple[str, str]]:
    """(column name, metric key without the stage prefix) in the seed tables' order."""
    return [
        ("acc", "acc"),
        *((f"recall_{c}", f"recall/{c}") for c in classes),
        ("f1_macro", "f1_macro"),
        ("auroc", "auroc"),
    ]


def _label(name: str) -> str:
    if name.startswith("recall_"):
        return f"recall {name.removeprefix('recall_')}"
    return {"acc": "accuracy", "f1_macro": "F1 macro", "auroc": "AUROC"}[name]


def _class_names(payloads: Sequence[dict[str, Any]], stage: str) -> list[str]:
    """Classes in the data's order: training counts first, then any class only in the metrics."""
    names: dict[str, None] = {}
    for payload in payloads:
        names.update(dict.fromkeys(payload.get("train_counts") or {}))
    prefix = f"{stage}/recall/"
    for payload in payloads:
        metrics = payload.get(stage) or {}
        names.update(dict.fromkeys(k.removeprefix(prefix) for k in metrics if k.startswith(prefix)))
    return list(names)


def _normalise(override: str) -> str:
    """`+key=v` and `++key=v` set the same thing as `key=v`."""
    return override.lstrip("+")


def _override_key(override: str) -> str:
    return _normalise(override).lstrip("~").split("=", 1)[0]


def _setting_overrides(payload: dict[str, Any]) -> list[str]:
    return [str(o) for o in payload.get("overrides") or [] if _override_key(str(o)) != SEED_KEY]


def _setting_key(payload: dict[str, Any]) -> frozenset[str]:
    return frozenset(_normalise(o) for o in _setting_overrides(payload))


def _seed(payload: dict[str, Any]) -> str:
    """The run's seed override, or `default` when the run kept the config's seed."""
    for override in payload.get("overrides") or []:
        if _override_key(str(override)) == SEED_KEY:
            return str(override).split("=", 1)[1]
    return "default"


def _count(payloads: Sequence[dict[str, Any]], name: str) -> int | str:
    """A class's training count; `min-max` when the seeds of a setting disagree."""
    values = {(p.get("train_counts") or {}).get(name) for p in payloads}
    known = sorted(v for v in values if v is not None)
    if not known:
        return NULL_CELL
    if len(values) == 1:
        return known[0]
    return f"{known[0]}-{known[-1]}"


def _mean_std(values: Sequence[float | None]) -> tuple[float, float]:
    """Mean and sample std (ddof=1); NaN when a run lacks the metric, std NaN for one run."""
    if any(v is None for v in values):
        return math.nan, math.nan
    array = np.asarray(values, dtype=np.float64)
    std = float(np.std(array, ddof=1)) if len(array) >= 2 else math.nan
    return float(np.mean(array)), std


def _percent_cell(mean: float, std: float) -> str:
    if math.isnan(mean):
        return NULL_CELL
    if math.isnan(std):
        return f"{100 * mean:.2f}"
    return f"{100 * mean:.2f} ± {100 * std:.2f}"


def _natural_key(path: Path) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: `solar-compare DIR... [--out DIR] [--stage val|test]`."""
    parser = argparse.ArgumentParser(
        prog="solar-compare",
        description="Compare training runs: one row per setting (overrides without seed), "
        "mean ± sample std over seeds. Writes comparison.md and comparison.csv.",
    )
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="run or multirun directories")
    parser.add_argument("--out", default=None, help="where to write the files (default: 1st DIR)")
    parser.add_argument("--stage", choices=("val", "test"), default="val")
    args = parser.parse_args(argv)
    with user_errors("solar-compare"):
        first = Path(args.dirs[0])
        out = args.out or (first.parent if first.is_file() else first)
        rows = comparison_rows(find_runs(args.dirs), args.stage)
        paths = write_comparison(rows, out)
    print(comparison_markdown(rows))
    # Where the files went goes to stderr, so that stdout stays a clean markdown table.
    print(f"solar-compare: wrote {paths[0]} and {paths[1]}", file=sys.stderr)


if __name__ == "__main__":
    main()
