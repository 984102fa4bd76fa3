"""Write docs/results.md from finished run directories: nothing in it is typed by hand.

    python docs/results.py [--root outputs/results] [--out docs/results.md] [--readme README.md]

Reads the sweeps that `docs/results.md` lists under "How to reproduce" (each a Hydra multirun
directory under `--root`), and for each section pools the seeds with `solar-compare`'s own
`comparison_rows`, prints the seed-style sensitivity tables of one run with `seed_table`, and
chooses the inspection threshold with `operating_point` on the run's validation predictions
(what `solar-eval` reports). A sweep that is missing is named as missing in the output.
With `--readme`, the summary table and each row's command replace the block between the
README's results markers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from solar_defect.analysis.comparison import comparison_markdown, comparison_rows, find_runs
from solar_defect.analysis.operating_point import operating_point
from solar_defect.analysis.report import read_predictions
from solar_defect.analysis.tables import seed_table

TRAIN = "solar-train -m experiment=seed_cpu"
LAUNCH = "num_threads=1 hydra/launcher=local_parallel hydra.launcher.n_jobs=2"
# sweep folder under --root -> the command that made it
SEED_SWEEPS = {
    "seed_augmentation": f"{TRAIN} augmentation=none,flip,all_classes,targeted seed=1,2,3 "
    f"{LAUNCH} hydra.sweep.dir=outputs/results/seed_augmentation",
    "seed_balance": f"{TRAIN} augmentation=flip balance=sampler,loss_weights seed=1,2,3 "
    f"{LAUNCH} hydra.sweep.dir=outputs/results/seed_balance",
    "seed_guided": f"{TRAIN} augmentation=guided guided.report=outputs/results/seed_augmentation/0 "
    f"seed=1,2,3 {LAUNCH} hydra.sweep.dir=outputs/results/seed_guided",
}
THRESHOLD_SWEEP = "threshold"
THRESHOLD_COMMAND = (
    f"{TRAIN} augmentation=flip data.protocol=threshold data.train_fraction=0.75 seed=1,2,3 "
    "num_threads=1 hydra.sweep.dir=outputs/results/threshold"
)
PUBLISHED_THRESHOLD_ACC = "88.42"
# The seed's own figures (shared/seed): ImageNet-pretrained ResNet50 at 224 px on a GPU.
SEED_FIGURES = [
    ("baseline (no augmentation)", "754 + 358", "86.06", "97.3", "62.9"),
    ("platform augmentation on all classes", "2,210 + 1,174", "86.31", "97.6", "62.5"),
    ("flip on all; brightness, clarity on defective", "1,508 + 1,432", "89.13", "97.2", "71.3"),
]
TARGET_RECALL = 0.95
BEST_BY = "f1_macro"
README_START = "<!-- results: written by docs/results.py -->"
README_END = "<!-- /results -->"


def wall_minutes(run_dir: Path) -> float:
    """Minutes from the composed config being written to `metrics.json` being written."""
    start = (run_dir / ".hydra" / "config.yaml").stat().st_mtime
    return ((run_dir / "metrics.json").stat().st_mtime - start) / 60


def run_of_seed(row: dict[str, Any], seed: str = "1") -> Path:
    """The row's run with `seed`, else its first run."""
    for run, run_seed in zip(row["runs"], row["seeds"], strict=True):
        if run_seed == seed:
            return Path(run)
    return Path(row["runs"][0])


def best_row(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return max(rows, key=lambda row: row["metrics"][BEST_BY][0])


def row_command(row: dict[str, Any]) -> str:
    """The command that reruns every seed of a row, from its runs' recorded overrides."""
    seeds = ",".join(str(seed) for seed in row["seeds"])
    return f"solar-train -m {' '.join(row['overrides'])} seed={seeds}"


def command_table(rows: Sequence[dict[str, Any]]) -> str:
    lines = ["| setting | command |", "|---|---|"]
    lines += [f"| {row['setting']} | `{row_command(row)}` |" for row in rows]
    return "\n".join(lines)


def timing_table(rows: Sequence[dict[str, Any]]) -> str:
    lines = ["| setting | wall time a job, median (min) | jobs |", "|---|---:|---:|"]
    for row in rows:
        minutes = [wall_minutes(Path(run)) for run in row["runs"]]
        lines.append(f"| {row['setting']} | {statistics.median(minutes):.1f} | {len(minutes)} |")
    return "\n".join(lines)


def operating_point_table(row: dict[str, Any]) -> str:
    """Per seed: the threshold on P(defective) for 95 % defective recall, and what it costs."""
    lines = [
        "| run | seed | threshold | accuracy | recall functional | recall defective | "
        "precision defective |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for run, seed in zip(row["runs"], row["seeds"], strict=True):
        predictions = read_predictions(Path(run) / "predictions" / "validate.csv")
        point = operating_point(
            predictions.probs, predictions.labels, predictions.class_names, TARGET_RECALL
        )
        val = point["val"]
        lines.append(
            f"| `{run}` | {seed} | {point['threshold']:.4f} | {100 * val['accuracy']:.2f} | "
            f"{100 * val['recall']['functional']:.2f} | {100 * val['recall']['defective']:.2f} | "
            f"{100 * val['precision']['defective']:.2f} |"
        )
    return "\n".join(lines)


def sensitivity_section(label: str, row: dict[str, Any]) -> list[str]:
    run = run_of_seed(row)
    report = json.loads((run / "sensitivity" / "validate.json").read_text())
    out = [f"**{label}** (`{row['setting']}`, run `{run}`, best checkpoint):", ""]
    for feature in ("brightness", "clarity"):
        out += [seed_table(report, feature), ""]
    return out


def seed_figures_table() -> str:
    lines = [
        "| seed setting (ResNet50, ImageNet weights, 224 px, GPU) | train counts | accuracy | "
        "recall functional | recall defective |",
        "|---|---|---:|---:|---:|",
    ]
    lines += [
        f"| {name} | {counts} | {a} | {rf} | {rd} |" for name, counts, a, rf, rd in SEED_FIGURES
    ]
    return "\n".join(lines)


def build(root: Path) -> tuple[str, str]:
    """docs/results.md, and the README's block: the summary table and each row's command."""
    present = {name: root / name for name in SEED_SWEEPS if (root / name).is_dir()}
    missing = [name for name in SEED_SWEEPS if name not in present]
    out = [
        "# Results",
        "",
        "Written by `python docs/results.py` from the run directories named below; every "
        "figure is read from a run's `metrics.json`, `sensitivity/validate.json` or "
        "`predictions/validate.csv`. Rerun the commands, then the script, to reproduce it.",
        "",
        f"Machine: {platform.machine()}, 2 CPU cores, no GPU, torch {torch.__version__}. "
        f"Written {dt.date.today().isoformat()}.",
        "",
        "## 1. The seed's experiment on our code (seed protocol, CPU preset)",
        "",
        "Preset `experiment=seed_cpu`: ResNet18 from scratch (no ImageNet weights can be had "
        "here), 96 px, batch 32, AdamW + one-cycle at lr 2e-3, 6 epochs, the seed protocol and "
        "split (train 754 + 358, validation 754 + 357). Every setting is 3 seeds, 1 thread a "
        "job, 2 jobs at a time (3 while the `threshold` sweep ran beside `seed_balance`, so "
        "those wall times are longer). Metrics are those of each run's best checkpoint by "
        "`val/acc`.",
        "",
        "How to reproduce (each command is one sweep; `comparison.md` lands at its root):",
        "",
        "```bash",
        *SEED_SWEEPS.values(),
        THRESHOLD_COMMAND,
        "python docs/results.py --readme README.md",
        "```",
        "",
    ]
    if missing:
        out += [f"Not run yet: {', '.join(missing)}.", ""]
    if not present:
        return "\n".join(out), "Not run yet: see docs/results.md."
    rows = comparison_rows(find_runs(present.values()))
    summary, commands = comparison_markdown(rows), command_table(rows)
    out += [summary, "", commands, "", timing_table(rows), ""]
    out += [
        "For orientation, the seed's own figures: one split of the same size and make-up (ours "
        "is drawn again for each seed by the split rule, `data.seed=${seed}`), a different "
        "model, weights and image size, no seeds repeated:",
        "",
        seed_figures_table(),
        "",
    ]
    baseline = next(r for r in rows if r["setting"] == "augmentation=none")
    best = best_row(rows)
    out += [
        "## 2. Sensitivity tables, seed layout",
        "",
        f"Baseline and the best setting by mean F1 macro "
        f"(`{best['setting']}`), seed 1. Cells: accuracy of the class in the bin (count).",
        "",
        *sensitivity_section("Baseline", baseline),
        *sensitivity_section("Best", best),
        f"## 3. Operating point for inspection: {100 * TARGET_RECALL:.0f} % defective recall",
        "",
        "The threshold on P(defective) with the best precision among those reaching the target "
        "recall on validation (`solar-eval` reports the same as `operating_point`). Chosen and "
        "measured on the same validation cells, so these figures are optimistic.",
        "",
        f"Best setting (`{best['setting']}`):",
        "",
        operating_point_table(best),
        "",
        "Baseline (`augmentation=none`):",
        "",
        operating_point_table(baseline),
        "",
    ]
    guided = [r for r in rows if r["setting"].startswith("augmentation=guided")]
    if guided:
        recipe = Path(guided[0]["runs"][0]) / "guided_recipe.yaml"
        out += [
            "## 4. The guided recipe",
            "",
            f"`augmentation=guided` derived this from the baseline's report (`{recipe}`):",
            "",
            "```yaml",
            recipe.read_text().rstrip(),
            "```",
            "",
        ]
    readme = [
        f"CPU preset `experiment=seed_cpu` (ResNet18 from scratch, 96 px, 6 epochs), seed "
        f"protocol, {rows[0]['n_seeds']} seeds a row; details, sensitivity tables and the "
        "operating point in [docs/results.md](docs/results.md).",
        "",
        summary,
        "",
        commands,
    ]
    threshold = root / THRESHOLD_SWEEP
    if threshold.is_dir():
        threshold_rows = comparison_rows(find_runs([threshold]))
        threshold_tables = [comparison_markdown(threshold_rows), "", command_table(threshold_rows)]
        out += [
            "## 5. Second protocol: `threshold` (Deitsch et al. 2019)",
            "",
            "All 2,624 cells, defective iff p >= 0.5, 75 / 25 split stratified by label and "
            "type (`data.protocol=threshold data.train_fraction=0.75`), validation on the 25 %, "
            "with the setting named in the row: the best of the seed's four augmentation "
            "settings by mean F1 macro (section 1).",
            "",
            *threshold_tables,
            "",
            f"For orientation only: Deitsch et al. report {PUBLISHED_THRESHOLD_ACC} % "
            "average accuracy for their CNN (an ImageNet-pretrained VGG-19 fine-tuned on a GPU "
            "with augmentation) trained on 1,968 of the same cells, 75 / 25. Their split is "
            "their own (ours is drawn by our split rule), and their model, weights and budget are "
            "far larger than this CPU preset's, so the rows are not a head-to-head comparison.",
            "",
        ]
        readme += [
            "",
            "Second protocol, `threshold` (p >= 0.5, 75 / 25 split; Deitsch et al. report "
            f"{PUBLISHED_THRESHOLD_ACC} % with an ImageNet-pretrained CNN on their split):",
            "",
            *threshold_tables,
        ]
    return "\n".join(out), "\n".join(readme)


def replace_block(text: str, block: str) -> str:
    """`text` with the part between the README's results markers replaced by `block`."""
    if README_START not in text or README_END not in text:
        raise SystemExit(f"the README has no {README_START} ... {README_END} block")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    return f"{head}{README_START}\n{block}\n{README_END}{tail}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("outputs/results"))
    parser.add_argument("--out", type=Path, default=Path("docs/results.md"))
    parser.add_argument("--readme", type=Path, help="also rewrite this README's results block")
    args = parser.parse_args()
    results, readme_block = build(args.root)
    args.out.write_text(results + "\n")
    print(f"wrote {args.out}")
    if args.readme:
        args.readme.write_text(replace_block(args.readme.read_text(), readme_block))
        print(f"wrote the results block of {args.readme}")


if __name__ == "__main__":
    main()
