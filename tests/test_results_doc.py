"""docs/results.py: each row's command reruns its seeds; the README block is replaced in place."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from solar_defect.analysis.comparison import comparison_rows

RESULTS_SCRIPT = Path(__file__).resolve().parent.parent / "docs" / "results.py"


@pytest.fixture(scope="module")
def results():
    spec = importlib.util.spec_from_file_location("results_doc", RESULTS_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_run(run_dir: Path, overrides: list[str], acc: float) -> None:
    run_dir.mkdir(parents=True)
    metrics = {
        "val": {"val/acc": acc, "val/recall/functional": 0.9, "val/recall/defective": 0.5},
        "train_counts": {"functional": 754, "defective": 358},
        "overrides": overrides,
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics))


def test_row_command_reruns_the_rows_seeds_with_their_overrides(results, tmp_path):
    for job, (augmentation, seed) in enumerate([("none", 1), ("none", 2), ("flip", 1)]):
        overrides = ["experiment=seed_cpu", f"augmentation={augmentation}", f"seed={seed}"]
        write_run(tmp_path / str(job), overrides, acc=0.8)

    rows = comparison_rows([tmp_path / str(job) for job in range(3)])

    assert [results.row_command(row) for row in rows] == [
        "solar-train -m experiment=seed_cpu augmentation=none seed=1,2",
        "solar-train -m experiment=seed_cpu augmentation=flip seed=1",
    ]
    assert "| augmentation=flip | `solar-train -m" in results.command_table(rows)


def test_replace_block_keeps_everything_outside_the_markers(results):
    readme = f"intro\n{results.README_START}\nold table\n{results.README_END}\noutro\n"

    replaced = results.replace_block(readme, "new table")

    assert replaced == f"intro\n{results.README_START}\nnew table\n{results.README_END}\noutro\n"
    assert results.replace_block(replaced, "new table") == replaced


def test_replace_block_without_markers_says_what_is_missing(results):
    with pytest.raises(SystemExit, match=re.escape(results.README_START)):
        results.replace_block("a README without the block\n", "table")


def test_the_readme_has_the_results_block(results):
    readme = (RESULTS_SCRIPT.parent.parent / "README.md").read_text()
    assert readme.count(results.README_START) == readme.count(results.README_END) == 1
