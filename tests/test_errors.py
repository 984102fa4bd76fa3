"""Bad input ends in one line and exit 2, leaving earlier runs alone; awkward good input works.

Most cases run `train` in-process under `user_errors`, as the console script does, because a
console-script call costs seconds of imports; `test_train_cli.py` runs a handful end to end.
Every row of `docs/errors.md` names one of the tests here or there.
"""

from __future__ import annotations

import csv
import importlib
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from solar_defect.cli import EXIT_USER_ERROR, user_errors
from solar_defect.train import train
from tests.conftest import CLASSES, synthetic_cell

DOCS = Path(__file__).resolve().parents[1] / "docs" / "errors.md"

# What an earlier run left in the run directory; a failed command must not change any of it.
PREVIOUS_RUN = {
    "metrics.json": b'{"val": {"val/acc": 0.5}}',
    "checkpoints/epoch_003.ckpt": b"an earlier run's checkpoint (stands in for the real thing)",
    "sensitivity/latest.json": b'{"epoch": 3}',
    "predictions/epoch_003.csv": b"index,path,label,pred\n",
    "skipped_images.txt": b"functional/old.png\n",
}


def write_previous_run(run_dir: Path) -> dict[str, bytes]:
    for name, content in PREVIOUS_RUN.items():
        (run_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (run_dir / name).write_bytes(content)
    return snapshot(run_dir)


def snapshot(folder: Path, skip: Callable[[str], bool] = lambda name: False) -> dict[str, bytes]:
    """Every file under `folder` with its bytes (`skip` leaves some out by relative path)."""
    files = (p for p in folder.rglob("*") if p.is_file())
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in files
        if not skip(str(p.relative_to(folder)))
    }


def copy_data(root: Path, tmp: Path) -> Path:
    copy = tmp / "data_copy"
    shutil.copytree(root, copy)
    return copy


def folder(root: Path) -> list[str]:
    return ["data=folder", f"data.root={root}"]


def labels_csv(tmp: Path, rows: str, header: str = "path,label") -> list[str]:
    path = tmp / "labels.csv"
    path.write_text(f"{header}\n{rows}")
    return ["data=csv", f"data.csv_path={path}"]


def png_bytes(truncate: bool = False) -> bytes:
    data = cv2.imencode(".png", np.full((48, 48), 128, np.uint8))[1].tobytes()
    return data[: len(data) // 2] if truncate else data


def bad_image(content: bytes) -> Callable[[Path, Path], list[str]]:
    def overrides(root: Path, tmp: Path) -> list[str]:
        copy = copy_data(root, tmp)
        (copy / "functional" / "cell_05.png").write_bytes(content)
        return folder(copy)

    return overrides


def empty_root(with_class_folders: bool) -> Callable[[Path, Path], list[str]]:
    def overrides(root: Path, tmp: Path) -> list[str]:
        empty = tmp / "empty"
        empty.mkdir()
        for name in CLASSES if with_class_folders else ():
            (empty / name).mkdir()
        return folder(empty)

    return overrides


def one_defective_cell(root: Path, tmp: Path) -> list[str]:
    copy = copy_data(root, tmp)
    for path in sorted((copy / "defective").glob("*.png"))[1:]:
        path.unlink()
    return folder(copy)


def other_model_checkpoint(root: Path, tmp: Path) -> list[str]:
    path = tmp / "resnet50.ckpt"
    hparams = {"name": "resnet50", "class_names": list(CLASSES)}
    torch.save({"state_dict": {}, "hyper_parameters": hparams}, path)
    return [f"ckpt_path={path}"]


def weights_only_checkpoint(root: Path, tmp: Path) -> list[str]:
    path = tmp / "epoch_003.ckpt"
    hparams = {"name": "resnet18", "class_names": list(CLASSES)}
    torch.save({"state_dict": {}, "hyper_parameters": hparams}, path)
    return [f"ckpt_path={path}"]


def not_json_report(root: Path, tmp: Path) -> list[str]:
    path = tmp / "latest.json"
    path.write_text("{not json")
    return ["augmentation=guided", f"guided.report={path}"]


def below_a_file(root: Path, tmp: Path) -> list[str]:
    (tmp / "a_file").write_text("")
    return [f"hydra.run.dir={tmp / 'a_file' / 'run'}"]


# case: (overrides from (synthetic data root, tmp_path), a fragment of the one error line)
BAD_INPUTS: dict[str, tuple[Callable[[Path, Path], list[str]], str]] = {
    "missing data root": (
        lambda root, tmp: folder(tmp / "nowhere"),
        "is not an existing folder: check data.root=DIR",
    ),
    "empty data root": (empty_root(False), "missing under"),
    "class folders without images": (empty_root(True), "no images found under"),
    "truncated image": (bad_image(png_bytes(truncate=True)), "cannot decode image"),
    "not an image": (bad_image(b"plain text, not an image"), "cannot decode image"),
    "zero-byte image": (bad_image(b""), "(0 bytes; empty, truncated or not an image)"),
    "unknown data.on_bad_image": (
        lambda root, tmp: ["data.on_bad_image=maybe"],
        "data.on_bad_image must be one of ['error', 'skip']",
    ),
    "CSV without a label column": (
        lambda root, tmp: labels_csv(tmp, "a.png,functional\n", header="path,class"),
        "missing column(s) ['label']",
    ),
    "CSV with an unknown class": (
        lambda root, tmp: labels_csv(tmp, "a.png,functional\nb.png,cracked\n"),
        "unknown class label(s) ['cracked']",
    ),
    "CSV probability above 1": (
        lambda root, tmp: labels_csv(tmp, "a.png,0\nb.png,1.5\n"),
        "defect probability 1.5 is not in [0, 1]",
    ),
    "CSV probability NaN": (
        lambda root, tmp: labels_csv(tmp, "a.png,0\nb.png,nan\n"),
        "defect probability nan is not in [0, 1]",
    ),
    "protocol leaves a class empty": (
        lambda root, tmp: labels_csv(tmp, "a.png,0\nb.png,0.6666667\n"),
        "have no images under protocol 'seed'",
    ),
    "unknown protocol": (lambda root, tmp: ["data.protocol=strict"], "unknown data.protocol"),
    "no validation data left": (
        lambda root, tmp: ["data.test_fraction=0.5"],
        "leaves no validation data",
    ),
    "a class missing from validation": (one_defective_cell, "no images in the val split"),
    "train_fraction 0": (
        lambda root, tmp: ["data.train_fraction=0"],
        "data.train_fraction must be in (0, 1), got 0",
    ),
    "train_fraction above 1": (
        lambda root, tmp: ["data.train_fraction=1.5"],
        "data.train_fraction must be in (0, 1), got 1.5",
    ),
    "batch size 0": (lambda root, tmp: ["data.batch_size=0"], "data.batch_size >= 1"),
    "negative learning rate": (
        lambda root, tmp: ["model.optimizer.lr=-1"],
        "model.optimizer.lr must be > 0, got -1",
    ),
    "num_threads 0": (
        lambda root, tmp: ["num_threads=0"],
        "num_threads=0 is not a positive integer",
    ),
    "unknown model": (lambda root, tmp: ["model.name=resnet51"], "is not a torchvision"),
    "absent pretrained weights": (
        lambda root, tmp: ["model.weights=DEFAULT"],
        "are not in the torch hub cache",
    ),
    "one sensitivity bin": (
        lambda root, tmp: ["callbacks.sensitivity.num_bins=1"],
        "callbacks.sensitivity.num_bins must be >= 2, got 1",
    ),
    "augmentation for an unknown class": (
        lambda root, tmp: ["+data.augmentation.classes.cracked=[hflip]"],
        "unknown class(es) ['cracked']",
    ),
    "unknown augmentation transform": (
        lambda root, tmp: ["augmentation=targeted", "data.augmentation.classes.defective=[twirl]"],
        "unknown transform 'twirl'",
    ),
    "guided augmentation without a report": (
        lambda root, tmp: ["augmentation=guided"],
        "augmentation=guided needs guided.report=PATH",
    ),
    "guided report path missing": (
        lambda root, tmp: ["augmentation=guided", f"guided.report={tmp / 'absent.json'}"],
        "guided augmentation: report",
    ),
    "guided report not JSON": (not_json_report, "is not JSON"),
    "missing ckpt_path file": (
        lambda root, tmp: [f"ckpt_path={tmp / 'missing.ckpt'}"],
        "not found: give a .ckpt file",
    ),
    "ckpt_path=last without last.ckpt": (
        lambda root, tmp: ["ckpt_path=last"],
        "last.ckpt not found",
    ),
    "ckpt_path not a checkpoint": (
        lambda root, tmp: [f"ckpt_path={tmp / 'run' / 'checkpoints' / 'epoch_003.ckpt'}"],
        "is not a readable checkpoint",
    ),
    "ckpt_path of another model": (other_model_checkpoint, "holds a model with name='resnet50'"),
    "ckpt_path of a weights-only file": (weights_only_checkpoint, "holds weights only"),
    "run directory below a file": (below_a_file, "cannot write to the run directory"),
}


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_in_process(compose_config, synthetic_root, tmp_path, monkeypatch, capsys, case):
    make_overrides, message = BAD_INPUTS[case]
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    run_dir = tmp_path / "run"
    before = write_previous_run(run_dir)
    overrides = [
        "data=folder",
        f"data.root={synthetic_root}",
        "data.image_size=32",
        "data.batch_size=8",
        "data.train_fraction=0.5",
        "model=resnet18",
        "trainer=cpu",
        "debug=fdr",
        "trainer.enable_progress_bar=false",
        "callbacks.rich_progress_bar=null",
        f"paths.cache_dir={tmp_path / 'cache'}",
        f"hydra.run.dir={run_dir}",
        *make_overrides(synthetic_root, tmp_path),
    ]
    cfg = compose_config(overrides)
    capsys.readouterr()

    with pytest.raises(SystemExit) as exit_info, user_errors("solar-train"):
        train(cfg)

    assert exit_info.value.code == EXIT_USER_ERROR
    line = error_line(capsys)
    assert line.startswith("solar-train: error: ")
    assert message in line
    assert snapshot(run_dir) == before


def mixed_images(root: Path) -> dict[str, list[str]]:
    """Every kind of image the design promises, in awkward sizes and names; file names per class."""
    rng = np.random.default_rng(1)
    names: dict[str, list[str]] = {}
    for label, name in enumerate(CLASSES):
        folder_ = root / name
        folder_.mkdir(parents=True)
        images = {
            "plain 8-bit.png": synthetic_cell(rng, bool(label), 0.5, 0.0),
            "deep 16-bit.png": synthetic_cell(rng, bool(label), 0.4, 0.7).astype(np.uint16) * 257,
            "colour.jpg": cv2.merge([synthetic_cell(rng, bool(label), 0.6, 0.0)] * 3),
            "colour rgb.png": cv2.merge([synthetic_cell(rng, bool(label), 0.3, 1.4)] * 3),
            "scan.tif": synthetic_cell(rng, bool(label), 0.7, 0.0),
            "large 96px.png": cv2.resize(synthetic_cell(rng, bool(label), 0.5, 0.7), (96, 96)),
            "wide 64x40.png": cv2.resize(synthetic_cell(rng, bool(label), 0.45, 0.0), (64, 40)),
            "ячейка é.png": synthetic_cell(rng, bool(label), 0.55, 2.1),
        }
        for file_name, image in images.items():
            encoded = cv2.imencode(Path(file_name).suffix, image)[1]
            encoded.tofile(folder_ / file_name)  # works for any file name, as read_gray does
        names[name] = sorted(f"{name}/{file_name}" for file_name in images)
    return names


def test_awkward_but_valid_images_train_end_to_end(compose_config, tmp_path):
    names = mixed_images(tmp_path / "mixed")
    run_dir = tmp_path / "run"
    cfg = compose_config(
        [
            *folder(tmp_path / "mixed"),
            "data.image_size=32",
            "data.batch_size=32",  # one batch: fast_dev_run then sees every validation image
            "data.train_fraction=0.5",
            "model=resnet18",
            "trainer=cpu",
            "debug=fdr",
            "trainer.enable_progress_bar=false",
            "callbacks.rich_progress_bar=null",
            f"paths.cache_dir={tmp_path / 'cache'}",
            f"hydra.run.dir={run_dir}",
        ]
    )
    results = train(cfg)
    assert results["train_counts"] == {"functional": 4, "defective": 4}
    assert results["val_counts"] == {"functional": 4, "defective": 4}
    with (run_dir / "predictions" / "validate.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8
    assert {row["path"] for row in rows} < set(names["functional"] + names["defective"])
    assert all(0.0 <= float(row["brightness"]) <= 1.0 for row in rows)
    assert not (run_dir / "skipped_images.txt").exists()


def test_skip_policy_trains_without_bad_files_and_lists_them(
    compose_config, synthetic_root, tmp_path
):
    data = copy_data(synthetic_root, tmp_path)
    (data / "functional" / "cell_05.png").write_bytes(png_bytes(truncate=True))
    (data / "defective" / "cell 11 é.png").write_bytes(b"")
    run_dir = tmp_path / "run"
    cfg = compose_config(
        [
            *folder(data),
            "data.on_bad_image=skip",
            "data.image_size=32",
            "data.batch_size=8",
            "data.train_fraction=0.5",
            "model=resnet18",
            "trainer=cpu",
            "debug=fdr",
            "trainer.enable_progress_bar=false",
            "callbacks.rich_progress_bar=null",
            f"paths.cache_dir={tmp_path / 'cache'}",
            f"hydra.run.dir={run_dir}",
        ]
    )
    results = train(cfg)
    skipped = (run_dir / "skipped_images.txt").read_text(encoding="utf-8").splitlines()
    assert skipped == ["functional/cell_05.png", "defective/cell 11 é.png"]
    counts = {c: results["train_counts"][c] + results["val_counts"][c] for c in CLASSES}
    assert counts == {"functional": 15, "defective": 16}
    assert json.loads((run_dir / "metrics.json").read_text())["val_counts"] == results["val_counts"]


# -- docs/errors.md ----------------------------------------------------------------------------
def docs_rows() -> list[list[str]]:
    """The table rows of docs/errors.md as cells (header and separator rows left out)."""
    rows = []
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and not set(cells[0]) <= set("-: ") and cells[0] != "input":
            rows.append(cells)
    return rows


def parametrized_ids(function: Callable[..., object]) -> set[str]:
    ids = set()
    for mark in getattr(function, "pytestmark", []):
        if mark.name == "parametrize":
            ids |= {str(value) for value in mark.args[1]}
    return ids


def test_every_row_of_docs_errors_names_an_existing_test():
    rows = docs_rows()
    assert len(rows) > 30
    documented = set()
    for input_, message, exit_code, test in rows:
        found = re.fullmatch(r"`(test_\w+)\.py::(test_\w+)(?:\[(.+)\])?`", test)
        assert found, f"row {input_!r}: test cell {test!r} is not `test_file.py::test_name[case]`"
        module_name, function_name, case = found.groups()
        module = importlib.import_module(f"tests.{module_name}")
        function = getattr(module, function_name, None)
        assert callable(function), f"row {input_!r}: no test {function_name} in {module_name}"
        assert exit_code in {"0", "2", "130"}, f"row {input_!r}: exit code {exit_code!r}"
        if case is not None:
            assert case in parametrized_ids(function), f"row {input_!r}: no case {case!r}"
            expected = getattr(module, "BAD_INPUTS", {}).get(case)
            if expected is not None:
                assert expected[1] in message, f"row {input_!r}: message differs from the test"
            documented.add((module_name, case))
    for module_name in ("test_errors", "test_train_cli"):
        cases = importlib.import_module(f"tests.{module_name}").BAD_INPUTS
        missing = [case for case in cases if (module_name, case) not in documented]
        assert not missing, f"{module_name} cases missing from docs/errors.md: {missing}"
