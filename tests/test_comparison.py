"""The comparison table from hand-made run directories with known numbers."""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import pytest

from solar_defect.analysis.comparison import (
    comparison_markdown,
    comparison_rows,
    find_runs,
    write_comparison,
)
from solar_defect.errors import UserInputError
from tests.conftest import run_cli

SOLAR_COMPARE = str(Path(sys.executable).parent / "solar-compare")
# Deliberately not the project's class names: the table must take them from the runs.
CLASSES = ("ok", "cracked", "finger")


def write_run(
    run_dir: Path,
    overrides: list[str],
    acc: float,
    recalls: tuple[float, ...] = (1.0, 0.5, 0.25),
    train_counts: tuple[int, ...] = (10, 4, 2),
) -> Path:
    """A run directory holding only what `solar-train` writes to `metrics.json`."""
    val = {"val/acc": acc, "val/f1_macro": acc / 2, "val/auroc": 0.5, "val/loss": 0.1}
    val.update({f"val/recall/{c}": r for c, r in zip(CLASSES, recalls, strict=True)})
    payload = {
        "val": val,
        "test": {},
        "best_checkpoint": "",
        "train_counts": dict(zip(CLASSES, train_counts, strict=True)),
        "val_counts": dict.fromkeys(CLASSES, 5),
        "overrides": overrides,
    }
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.json").write_text(json.dumps(payload))
    return run_dir


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """Two settings: `flip` over three seeds (override order varies), `none` over one."""
    root = tmp_path / "sweep"
    write_run(root / "0", ["data=folder", "augmentation=flip", "seed=1"], acc=0.5)
    write_run(root / "1", ["data=folder", "augmentation=none", "seed=1"], acc=0.625)
    write_run(root / "2", ["data=folder", "augmentation=flip", "seed=2"], acc=0.75)
    write_run(root / "10", ["seed=3", "data=folder", "+augmentation=flip"], acc=1.0)
    return root


def test_runs_found_recursively_in_natural_order(sweep):
    assert [p.name for p in find_runs([sweep])] == ["0", "1", "2", "10"]


def test_rows_group_by_overrides_without_seed(sweep):
    rows = comparison_rows(find_runs([sweep]))
    assert [row["setting"] for row in rows] == ["augmentation=flip", "augmentation=none"]
    flip, none = rows
    assert flip["common"] == ["data=folder"]
    assert (flip["n_seeds"], flip["seeds"]) == (3, ["1", "2", "3"])
    assert (none["n_seeds"], none["seeds"]) == (1, ["1"])


def test_mean_and_sample_std_are_exact(sweep):
    flip, none = comparison_rows(find_runs([sweep]))
    # acc 0.5, 0.75, 1.0: mean 0.75, sample std sqrt((0.25² + 0 + 0.25²) / 2) = 0.25
    assert flip["metrics"]["acc"] == (0.75, 0.25)
    assert flip["metrics"]["f1_macro"] == (0.375, 0.125)
    assert flip["metrics"]["recall_cracked"] == (0.5, 0.0)
    mean, std = none["metrics"]["acc"]
    assert mean == 0.625
    assert math.isnan(std)  # one seed: no spread to show


def test_class_names_and_counts_come_from_the_runs(sweep):
    flip, _ = comparison_rows(find_runs([sweep]))
    assert flip["class_names"] == list(CLASSES)
    assert set(flip["metrics"]) == {
        "acc",
        "recall_ok",
        "recall_cracked",
        "recall_finger",
        "f1_macro",
        "auroc",
    }
    assert flip["train_counts"] == {"ok": 10, "cracked": 4, "finger": 2}


def test_markdown_is_laid_out_like_the_seed_tables(sweep):
    table = comparison_markdown(comparison_rows(find_runs([sweep])))
    lines = table.splitlines()
    assert lines[0] == "Common overrides: `data=folder`"
    assert lines[2] == (
        "| setting | train counts (ok + cracked + finger) | accuracy | recall ok | recall cracked "
        "| recall finger | F1 macro | AUROC | seeds |"
    )
    assert lines[4] == (
        "| augmentation=flip | 10 + 4 + 2 | 75.00 ± 25.00 | 100.00 ± 0.00 | 50.00 ± 0.00 "
        "| 25.00 ± 0.00 | 37.50 ± 12.50 | 50.00 ± 0.00 | 3 |"
    )
    assert lines[5].startswith("| augmentation=none | 10 + 4 + 2 | 62.50 | 100.00 |")


def test_csv_is_one_machine_readable_row_per_setting(sweep, tmp_path):
    md_path, csv_path = write_comparison(comparison_rows(find_runs([sweep])), tmp_path / "out")
    assert md_path.read_text().count("augmentation=") == 2
    with csv_path.open() as handle:
        flip, none = list(csv.DictReader(handle))
    assert flip["setting"] == "augmentation=flip"
    assert (flip["n_seeds"], flip["train_count_cracked"]) == ("3", "4")
    assert (float(flip["acc_mean"]), float(flip["acc_std"])) == (0.75, 0.25)
    assert (none["acc_mean"], none["acc_std"]) == ("0.625", "")
    assert none["overrides"] == "data=folder augmentation=none"


def test_missing_metric_and_disagreeing_counts_are_shown_not_hidden(tmp_path):
    write_run(tmp_path / "a", ["seed=1"], acc=0.5, train_counts=(10, 4, 2))
    run_b = write_run(tmp_path / "b", ["seed=2"], acc=0.5, train_counts=(10, 6, 2))
    payload = json.loads((run_b / "metrics.json").read_text())
    del payload["val"]["val/auroc"]
    (run_b / "metrics.json").write_text(json.dumps(payload))

    (row,) = comparison_rows(find_runs([tmp_path]))
    assert row["setting"] == "(defaults)"
    assert row["train_counts"]["cracked"] == "4-6"
    assert all(math.isnan(v) for v in row["metrics"]["auroc"])
    assert "| (defaults) | 10 + 4-6 + 2 | 50.00 ± 0.00 |" in comparison_markdown([row])


def test_a_folder_without_runs_is_a_user_error(tmp_path):
    with pytest.raises(UserInputError, match="no runs under"):
        find_runs([tmp_path])


def test_cli_prints_the_table_and_writes_to_the_first_dir(sweep, tmp_path):
    result = run_cli([SOLAR_COMPARE, str(sweep)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "| augmentation=flip | 10 + 4 + 2 | 75.00 ± 25.00 |" in result.stdout
    assert (sweep / "comparison.md").read_text().strip() == result.stdout.strip()
    assert (sweep / "comparison.csv").is_file()


def test_cli_out_option(sweep, tmp_path):
    result = run_cli(
        [SOLAR_COMPARE, str(sweep / "0"), str(sweep / "1"), "--out", "tables"], tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "tables" / "comparison.csv").is_file()
    assert not (sweep / "comparison.md").exists()


def test_cli_on_an_empty_dir_says_so_in_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_cli([SOLAR_COMPARE, str(tmp_path / "empty")], cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("solar-compare: error: no runs under")


def test_interrupted_runs_are_left_out(tmp_path):
    import json

    from solar_defect.analysis.comparison import comparison_rows

    for job, (acc, interrupted) in enumerate([(0.8, False), (0.2, True)]):
        run = tmp_path / str(job)
        run.mkdir()
        payload = {
            "val": {"val/acc": acc, "val/recall/functional": acc, "val/recall/defective": acc},
            "train_counts": {"functional": 4, "defective": 2},
            "overrides": [f"seed={job}"],
            "interrupted": interrupted,
        }
        (run / "metrics.json").write_text(json.dumps(payload))
    rows = comparison_rows([tmp_path / "0", tmp_path / "1"])
    assert rows[0]["n_seeds"] == 1
    assert rows[0]["metrics"]["acc"][0] == 0.8
