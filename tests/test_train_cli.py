"""`solar-train` as a user runs it: a fast_dev_run, a real-ELPV smoke run, one-line errors."""

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import SOLAR_TRAIN, run_cli, tiny_run_overrides


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


def _bad_labels_csv(tmp_path: Path, rows: str) -> list[str]:
    csv = tmp_path / "labels.csv"
    csv.write_text("path,label\n" + rows)
    return ["data=csv", f"data.csv_path={csv}"]


def _corrupt_copy(synthetic_root: Path, tmp_path: Path) -> list[str]:
    root = tmp_path / "corrupt"
    shutil.copytree(synthetic_root, root)
    (root / "functional" / "cell_05.png").write_bytes(b"\x89PNG truncated")
    return ["data=folder", f"data.root={root}"]


BAD_INPUTS = {
    "missing data.root": (
        lambda root, tmp: ["data=folder", f"data.root={tmp / 'nowhere'}"],
        "is not an existing folder",
    ),
    "corrupt image": (_corrupt_copy, "cannot decode image"),
    "unknown protocol": (lambda root, tmp: ["data.protocol=strict"], "unknown data.protocol"),
    "unknown class": (
        lambda root, tmp: _bad_labels_csv(tmp, "a.png,functional\nb.png,cracked\n"),
        "unknown class label(s) ['cracked']",
    ),
    "class left empty": (
        lambda root, tmp: _bad_labels_csv(tmp, "a.png,0\nb.png,0.6666667\n"),
        "have no images under protocol 'seed'",
    ),
    "unknown model": (lambda root, tmp: ["model.name=resnet51"], "is not a torchvision"),
    "absent weights": (
        lambda root, tmp: ["model.weights=DEFAULT"],
        "are not in the torch hub cache",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gives_one_line_and_exit_2(synthetic_root, tmp_path, monkeypatch, case):
    make_overrides, message = BAD_INPUTS[case]
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
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
