"""`solar-train` as a user runs it: a fast_dev_run, a real-ELPV smoke run, one-line errors."""

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import SOLAR_TRAIN, run_cli, tiny_run_overrides
from tests.test_errors import snapshot, write_previous_run


def test_fast_dev_run_through_the_console_script(synthetic_root, tmp_path):
    result = run_cli(
        [SOLAR_TRAIN, *tiny_run_overrides(synthetic_root, tmp_path), "debug=fdr"], cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "recall defective" in result.stdout
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["val_counts"] == {"functional": 8, "defective": 8}
    assert "debug=fdr" in metrics["overrides"]
    assert 0.0 <= metrics["val"]["val/acc"] <= 1.0


@pytest.mark.slow
def test_real_elpv_smoke_run_has_the_seed_split(tmp_path):
    result = run_cli(
        [
            SOLAR_TRAIN,
            "experiment=seed_baseline",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=2",
            "trainer.limit_val_batches=2",
            "callbacks.rich_progress_bar=null",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["train_counts"] == {"functional": 754, "defective": 358}
    assert metrics["val_counts"] == {"functional": 754, "defective": 357}
    assert Path(metrics["best_checkpoint"]).is_file()
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert (run / "checkpoints" / "last.ckpt").is_file()


def _corrupt_copy(synthetic_root: Path, tmp_path: Path) -> list[str]:
    root = tmp_path / "corrupt"
    shutil.copytree(synthetic_root, root)
    (root / "functional" / "cell_05.png").write_bytes(b"\x89PNG truncated")
    return ["data=folder", f"data.root={root}"]


def _below_a_file(synthetic_root: Path, tmp_path: Path) -> list[str]:
    (tmp_path / "a_file").write_text("")
    return [f"hydra.run.dir={tmp_path / 'a_file' / 'run'}"]


# Through the real console script: what Hydra does before our code runs (compose the config,
# create the run directory) and a few data/model errors end to end. test_errors.py has the rest.
BAD_INPUTS = {
    "corrupt image": (_corrupt_copy, "cannot decode image"),
    "negative learning rate": (
        lambda root, tmp: ["model.optimizer.lr=-1"],
        "model.optimizer.lr must be > 0",
    ),
    "run directory Hydra cannot create": (
        lambda root, tmp: ["hydra.run.dir=/proc/solar_defect_run"],
        "cannot write the run directory (/proc/solar_defect_run: No such file or directory)",
    ),
    "run directory below a file": (_below_a_file, "cannot write the run directory"),
    "override of a key the config lacks": (
        lambda root, tmp: ["data.augmentation.classes.defective=[twirl]"],
        "Could not override 'data.augmentation.classes.defective'. To append to your config use "
        "+data.augmentation.classes.defective=[twirl]",
    ),
    "unknown config group option": (
        lambda root, tmp: ["trainer=tpu"],
        "Could not find 'trainer/tpu' Available options in 'trainer': cpu, ddp",
    ),
}


def _outside_hydra_records(name: str) -> bool:
    """Hydra records each launch (.hydra/, the log); the run's own files must stay as they were."""
    return name.startswith(".hydra") or name.endswith(".log")


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gives_one_line_and_exit_2(synthetic_root, tmp_path, case):
    make_overrides, message = BAD_INPUTS[case]
    run_dir = tmp_path / "run"
    before = write_previous_run(run_dir)
    overrides = tiny_run_overrides(synthetic_root, tmp_path) + make_overrides(
        synthetic_root, tmp_path
    )
    result = run_cli([SOLAR_TRAIN, *overrides, "debug=fdr"], cwd=tmp_path)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("solar-train: error: ")
    assert message in lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    assert snapshot(run_dir, skip=_outside_hydra_records) == before
