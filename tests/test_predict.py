"""`solar-predict` on a tiny checkpoint: rows, labels, skipped files, errors, same as validation."""

import csv
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from solar_defect.errors import UserInputError
from solar_defect.models.classifier import CHECKPOINT_META
from solar_defect.predict import predict, read_model_info
from tests.conftest import PER_CLASS, run_cli

SOLAR_PREDICT = str(Path(sys.executable).parent / "solar-predict")


def predict_overrides(ckpt: Path, source: Path | str, output: Path) -> list[str]:
    return [
        f"ckpt_path={ckpt}",
        f"input={source}",
        f"output={output}",
        "trainer=cpu",
        "trainer.enable_progress_bar=false",
        "callbacks.rich_progress_bar=null",
        "data.batch_size=8",
        f"hydra.run.dir={output.parent / 'run'}",
    ]


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_checkpoint_stores_the_training_image_size(tiny_checkpoint):
    checkpoint = torch.load(tiny_checkpoint, map_location="cpu", weights_only=False)
    assert checkpoint[CHECKPOINT_META] == {"image_size": 32}


def test_folder_gives_one_row_per_image_labelled_by_class_folder(
    tiny_checkpoint, synthetic_root, compose_config, tmp_path
):
    output = tmp_path / "out" / "pred.csv"
    summary = predict(
        compose_config(predict_overrides(tiny_checkpoint, synthetic_root, output), "predict")
    )
    rows = read_rows(output)
    assert list(rows[0]) == ["path", "label", "pred", "prob_functional", "prob_defective"]
    assert len(rows) == summary["num_predicted"] == 2 * PER_CLASS
    assert {r["label"] for r in rows} == {"functional", "defective"}
    assert all(r["path"].startswith(f"{r['label']}/") for r in rows)
    probs = np.array([[float(r["prob_functional"]), float(r["prob_defective"])] for r in rows])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    names = np.array(["functional", "defective"])
    assert [r["pred"] for r in rows] == names[probs.argmax(axis=1)].tolist()
    assert summary["image_size"] == 32
    assert not (output.parent / "skipped_images.txt").exists()


def test_probabilities_equal_the_validation_predictions(
    tiny_checkpoint, synthetic_root, compose_config, tmp_path
):
    output = tmp_path / "pred.csv"
    predict(compose_config(predict_overrides(tiny_checkpoint, synthetic_root, output), "predict"))
    predicted = {r["path"]: r for r in read_rows(output)}
    validated = read_rows(tiny_checkpoint.parent.parent / "predictions" / "validate.csv")
    assert len(validated) == PER_CLASS  # half of the cells
    for row in validated:
        mine = predicted[row["path"]]
        assert mine["pred"] == row["pred"]
        for name in ("functional", "defective"):
            assert float(mine[f"prob_{name}"]) == pytest.approx(
                float(row[f"prob_{name}"]), abs=1e-6
            )


def test_glob_csv_and_threshold(tiny_checkpoint, synthetic_root, compose_config, tmp_path):
    output = tmp_path / "glob.csv"
    pattern = f"{synthetic_root}/defective/*.png"
    cfg = compose_config(
        [*predict_overrides(tiny_checkpoint, pattern, output), "threshold=0.0"], "predict"
    )
    predict(cfg)
    rows = read_rows(output)
    assert len(rows) == PER_CLASS
    assert "label" not in rows[0]
    assert {r["pred"] for r in rows} == {"defective"}  # P(defective) >= 0 always

    table = tmp_path / "cells.csv"
    table.write_text(
        "path,label\n"
        f"{synthetic_root / 'functional' / 'cell_00.png'},functional\n"
        f"{synthetic_root / 'defective' / 'cell_01.png'},defective\n"
    )
    output = tmp_path / "from_csv.csv"
    predict(compose_config(predict_overrides(tiny_checkpoint, table, output), "predict"))
    assert [r["label"] for r in read_rows(output)] == ["functional", "defective"]


def _corrupt_copy(synthetic_root: Path, tmp_path: Path) -> Path:
    root = tmp_path / "cells"
    shutil.copytree(synthetic_root, root)
    (root / "functional" / "broken.png").write_bytes(b"\x89PNG truncated")
    return root


def test_skip_leaves_out_the_corrupt_file_and_lists_it(
    tiny_checkpoint, synthetic_root, compose_config, tmp_path
):
    root = _corrupt_copy(synthetic_root, tmp_path)
    output = tmp_path / "out" / "pred.csv"
    overrides = [*predict_overrides(tiny_checkpoint, root, output), "data.on_bad_image=skip"]
    summary = predict(compose_config(overrides, "predict"))
    paths = [r["path"] for r in read_rows(output)]
    assert len(paths) == 2 * PER_CLASS
    assert "functional/broken.png" not in paths
    assert summary["skipped"] == ["functional/broken.png"]
    skipped = (output.parent / "skipped_images.txt").read_text().splitlines()
    assert skipped == ["functional/broken.png"]


def test_a_corrupt_file_under_error_is_one_line_and_exit_2(
    tiny_checkpoint, synthetic_root, tmp_path
):
    root = _corrupt_copy(synthetic_root, tmp_path)
    output = tmp_path / "pred.csv"
    result = run_cli(
        [SOLAR_PREDICT, *predict_overrides(tiny_checkpoint, root, output)], cwd=tmp_path
    )
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("solar-predict: error: cannot decode image")
    assert "broken.png" in lines[0]
    assert not output.exists()


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing ckpt", "not found"),
        ("empty folder", "no images found"),
        ("glob without matches", "no image files match"),
        ("unwritable output", "cannot write output"),
        ("threshold out of range", "threshold must be in [0, 1]"),
    ],
)
def test_bad_input_is_a_user_error(tiny_checkpoint, compose_config, tmp_path, case, message):
    ckpt, source, output = tiny_checkpoint, tmp_path / "empty", tmp_path / "pred.csv"
    source.mkdir()
    extra = []
    if case == "missing ckpt":
        ckpt = tmp_path / "nowhere.ckpt"
    elif case == "glob without matches":
        source = tmp_path / "empty" / "*.png"
    elif case == "unwritable output":
        (tmp_path / "a_file").write_text("")
        output = tmp_path / "a_file" / "pred.csv"  # a file where a folder must be
    elif case == "threshold out of range":
        extra = ["threshold=1.5"]
    cfg = compose_config([*predict_overrides(ckpt, source, output), *extra], "predict")
    with pytest.raises(UserInputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        predict(cfg)


def test_older_checkpoints_take_the_size_from_their_run_config(tiny_checkpoint, tmp_path):
    checkpoint = torch.load(tiny_checkpoint, map_location="cpu", weights_only=False)
    del checkpoint[CHECKPOINT_META]  # as written before the size was stored
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    old = run / "checkpoints" / "old.ckpt"
    torch.save(checkpoint, old)
    with pytest.raises(UserInputError, match=r"pass data.image_size=S"):
        read_model_info(old)
    assert read_model_info(old, image_size=40).image_size == 40

    (run / ".hydra").mkdir()
    OmegaConf.save(OmegaConf.create({"data": {"image_size": 32}}), run / ".hydra" / "config.yaml")
    info = read_model_info(old)
    assert (info.image_size, info.class_names) == (32, ["functional", "defective"])
