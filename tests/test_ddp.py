"""DDP simulated on the CPU (`trainer=ddp_sim`: ddp_spawn, 2 processes): one run directory written
by rank 0, and evaluation that gives the single-process answers for the same checkpoint."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from solar_defect.evaluate import evaluate
from solar_defect.train import train
from tests.conftest import SOLAR_TRAIN, run_cli, tiny_run_overrides


def odd_data(synthetic_root: Path, tmp_path: Path) -> Path:
    """15 functional + 16 defective cells: 15 validation images do not split evenly over 2 ranks,
    so a sampler that pads (DistributedSampler) would count one image twice."""
    root = tmp_path / "odd"
    shutil.copytree(synthetic_root, root)
    (root / "functional" / "cell_00.png").unlink()
    return root


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_ddp_sim_validation_equals_single_process_for_the_same_checkpoint(
    compose_config, synthetic_root, tmp_path
):
    data = odd_data(synthetic_root, tmp_path)
    trained = train(compose_config(tiny_run_overrides(data, tmp_path / "train")))
    ckpt = trained["best_checkpoint"]
    assert trained["val_counts"] == {"functional": 7, "defective": 8}

    runs = {}
    for trainer in ("cpu", "ddp_sim"):
        overrides = [
            o for o in tiny_run_overrides(data, tmp_path / trainer) if not o.startswith("model=")
        ]
        evaluate(compose_config([f"ckpt_path={ckpt}", *overrides, f"trainer={trainer}"], "eval"))
        runs[trainer] = tmp_path / trainer / "run"

    single, ddp = (json.loads((runs[t] / "metrics.json").read_text()) for t in ("cpu", "ddp_sim"))
    assert ddp["val_counts"] == single["val_counts"]
    assert ddp["val"].keys() == single["val"].keys()
    for key, value in single["val"].items():
        # the loss is a mean the ranks sum in another order; everything else counts samples
        expected = pytest.approx(value, rel=1e-6) if key == "val/loss" else value
        assert ddp["val"][key] == expected, key
    assert ddp["operating_point"] == single["operating_point"]

    def report(run: Path) -> dict:
        return json.loads((run / "sensitivity" / "validate.json").read_text())

    assert report(runs["ddp_sim"]) == report(runs["cpu"])
    assert report(runs["cpu"])["num_samples"] == 15
    rows = {t: read_rows(runs[t] / "predictions" / "validate.csv") for t in runs}
    assert [r["index"] for r in rows["ddp_sim"]] == [str(i) for i in range(15)]
    for key in ("path", "label", "pred"):
        assert [r[key] for r in rows["ddp_sim"]] == [r[key] for r in rows["cpu"]]


@pytest.mark.slow
def test_ddp_sim_training_writes_one_run_directory_from_rank_zero(synthetic_root, tmp_path):
    data = odd_data(synthetic_root, tmp_path)
    # the default run directory (outputs/train/runs/<time>): each rank would make its own if
    # it composed the config itself
    overrides = [o for o in tiny_run_overrides(data, tmp_path) if not o.startswith("hydra.")]
    args = [SOLAR_TRAIN, *overrides, f"paths.root_dir={tmp_path}", "trainer=ddp_sim"]
    result = run_cli(args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]

    (run,) = (tmp_path / "outputs" / "train" / "runs").iterdir()  # the ranks share one run
    files = {str(p.relative_to(run)) for p in run.rglob("*") if p.is_file()}
    # one TensorBoard writer per process group that ddp_spawn starts (fit, then validate): rank
    # 0's; rank 1 writing would add a file per group
    events = {f for f in files if "tfevents" in f}
    assert len(events) == 2
    (best,) = [f for f in files if f.startswith("checkpoints/epoch_")]
    assert files - events - {best} == {
        "tensorboard/hparams.yaml",
        ".hydra/config.yaml",
        ".hydra/hydra.yaml",
        ".hydra/overrides.yaml",
        "train.log",
        "metrics.json",
        "checkpoints/last.ckpt",
        "sensitivity/epoch_000.json",
        "sensitivity/latest.json",
        "sensitivity/validate.json",
        "predictions/epoch_000.csv",
        "predictions/validate.csv",
    }
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["val_counts"] == {"functional": 7, "defective": 8}
    assert Path(metrics["best_checkpoint"]).name == Path(best).name
    assert 0.0 <= metrics["val"]["val/acc"] <= 1.0
    assert [r["index"] for r in read_rows(run / "predictions" / "validate.csv")] == [
        str(i) for i in range(15)
    ]
