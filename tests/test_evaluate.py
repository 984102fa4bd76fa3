"""`solar-eval` on a checkpoint of a tiny training run: files, metrics, report, errors."""

import csv
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from solar_defect.analysis.binning import sensitivity_report
from solar_defect.errors import UserInputError
from solar_defect.evaluate import data_differences, evaluate
from solar_defect.train import train
from tests.conftest import run_cli, tiny_run_overrides

SOLAR_EVAL = str(Path(sys.executable).parent / "solar-eval")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def eval_overrides(data_root: Path, run_dir: Path) -> list[str]:
    """Training's tiny overrides, less the model (it comes from the checkpoint)."""
    return [o for o in tiny_run_overrides(data_root, run_dir) if not o.startswith("model=")]


@pytest.fixture
def trained(compose_config, tiny_overrides, tmp_path) -> tuple[str, dict]:
    """A one-epoch tiny training run: (best checkpoint, its metrics.json)."""
    cfg = compose_config(tiny_overrides)
    results = train(cfg)
    metrics = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert Path(results["best_checkpoint"]).is_file()
    return results["best_checkpoint"], metrics


def read_predictions_csv(path: Path) -> dict[str, list[str]]:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return {key: [row[key] for row in rows] for key in rows[0]}


@pytest.mark.slow
def test_eval_writes_metrics_report_and_sensitivity(trained, synthetic_root, tmp_path):
    ckpt, train_metrics = trained
    eval_dir = tmp_path / "eval"
    result = run_cli(
        [SOLAR_EVAL, f"ckpt_path={ckpt}", *eval_overrides(synthetic_root, eval_dir)],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "recall defective" in result.stdout
    run = eval_dir / "run"

    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["best_checkpoint"] == ckpt
    assert metrics["val_counts"] == {"functional": 8, "defective": 8}
    assert metrics["test"] == {}
    # the same checkpoint on the same split: what training reported for it
    expected = {k: v for k, v in train_metrics["val"].items() if k != "val/acc_best"}
    assert metrics["val"] == expected

    point = metrics["operating_point"]
    assert point["positive_class"] == "defective"
    assert point["target_recall"] == 0.95
    assert point["val"]["recall"]["defective"] >= 0.95
    assert 0.0 <= point["threshold"] <= 1.0

    for name in ("confusion_matrix", *(f"sensitivity_{f}" for f in ("brightness", "clarity"))):
        assert (run / "figures" / f"{name}.png").read_bytes()[:8] == PNG_MAGIC
    report = (run / "report.md").read_text()
    for heading in ("## Metrics", "## Operating point", "### brightness", "### clarity"):
        assert heading in report
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert "figures/confusion_matrix.png" in linked
    assert all((run / path).is_file() for path in linked)  # self-contained: relative links

    assert (run / "sensitivity" / "validate.json").is_file()
    assert (run / "sensitivity" / "latest.json").is_file()
    assert (run / "predictions" / "validate.csv").is_file()


@pytest.mark.slow
def test_sensitivity_json_is_reproduced_from_the_predictions_csv(
    trained, compose_config, synthetic_root, tmp_path
):
    ckpt, _ = trained
    cfg = compose_config(
        [f"ckpt_path={ckpt}", *eval_overrides(synthetic_root, tmp_path / "eval")], "eval"
    )
    evaluate(cfg)
    run = Path(cfg.paths.output_dir)
    saved = json.loads((run / "sensitivity" / "validate.json").read_text())
    table = read_predictions_csv(run / "predictions" / "validate.csv")
    names = saved["class_names"]
    rebuilt = sensitivity_report(
        {f: np.array([float(v) for v in table[f]]) for f in saved["features"]},
        np.array([names.index(v) for v in table["label"]]),
        np.array([names.index(v) for v in table["pred"]]),
        names,
        saved["num_bins"],
        saved["epoch"],
        cfg.callbacks.sensitivity.min_count,
    )
    assert rebuilt == saved


def test_class_mismatch_is_a_user_error(compose_config, synthetic_root, tmp_path):
    fake = tmp_path / "four.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"class_names": ["a", "b", "c"]}}, fake)
    cfg = compose_config(
        [f"ckpt_path={fake}", *eval_overrides(synthetic_root, tmp_path / "eval")], "eval"
    )
    with pytest.raises(UserInputError, match=r"trained on classes \['a', 'b', 'c'\]"):
        evaluate(cfg)


def test_data_differences_name_what_changed_since_training(compose_config, tmp_path):
    run = tmp_path / "train_run"
    trained = compose_config([f"hydra.run.dir={run}", "data.image_size=128", "seed=7"])
    (run / ".hydra").mkdir(parents=True)
    OmegaConf.save(trained, run / ".hydra" / "config.yaml")
    (run / "checkpoints").mkdir()
    ckpt = run / "checkpoints" / "last.ckpt"
    ckpt.write_bytes(b"")

    same = compose_config(["ckpt_path=x", "data.image_size=128", "seed=7"], "eval")
    assert data_differences(same.data, ckpt) == {}
    other = compose_config(["ckpt_path=x", "data.image_size=224"], "eval")
    assert data_differences(other.data, ckpt) == {"image_size": (128, 224), "seed": (7, 42)}
    assert data_differences(other.data, tmp_path / "elsewhere.ckpt") == {}


def _ckpt_args(case: str, tmp_path: Path) -> list[str]:
    if case == "missing":
        return []
    path = tmp_path / f"{case}.ckpt"
    if case == "not a checkpoint":
        path.write_text("plain text, not a checkpoint")
    return [f"ckpt_path={path}"]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "ckpt_path is required"),
        ("absent file", "not found"),
        ("not a checkpoint", "is not a readable checkpoint"),
    ],
)
def test_bad_ckpt_path_gives_one_line_and_exit_2(synthetic_root, tmp_path, case, message):
    args = _ckpt_args(case, tmp_path)
    result = run_cli([SOLAR_EVAL, *args, *eval_overrides(synthetic_root, tmp_path)], cwd=tmp_path)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("solar-eval: error: ")
    assert message in lines[0]
