"""`solar-export` of a tiny checkpoint: ONNX parity and dynamic batch, TorchScript, failures."""

import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from solar_defect.cli import CONFIG_DIR
from solar_defect.export import ProbabilityModel, export
from solar_defect.predict import decode, load_model, read_input, read_model_info
from solar_defect.train import train
from tests.conftest import run_cli, tiny_run_overrides

SOLAR_EXPORT = str(Path(sys.executable).parent / "solar-export")


def compose_train(overrides: list[str], cwd: Path):
    """`train.yaml` composed as the CLI would (a module-scoped twin of `compose_config`)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    GlobalHydra.instance().clear()
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = cfg.hydra.run.dir
        cfg.hydra.runtime.cwd = str(cwd)
    HydraConfig.instance().set_config(cfg)
    return cfg


@pytest.fixture(scope="module")
def tiny_ckpt(synthetic_root, tmp_path_factory) -> Path:
    """Best checkpoint of a two-epoch 32 px run on the synthetic set."""
    run_dir = tmp_path_factory.mktemp("export_train")
    overrides = [*tiny_run_overrides(synthetic_root, run_dir), "trainer.max_epochs=2"]
    return Path(train(compose_train(overrides, run_dir))["best_checkpoint"])


def export_overrides(ckpt: Path, data_root: Path, output: Path) -> list[str]:
    """Check on the validation cells of the synthetic folder, as trained."""
    return [
        f"ckpt_path={ckpt}",
        f"output={output}",
        "data=folder",
        f"data.root={data_root}",
        "data.train_fraction=0.5",
        f"paths.cache_dir={output.parent / 'cache'}",
        f"hydra.run.dir={output.parent / 'run'}",
    ]


def test_onnx_matches_pytorch_on_real_cells_at_any_batch_size(
    tiny_ckpt, synthetic_root, compose_config, tmp_path
):
    output = tmp_path / "model.onnx"
    summary = export(compose_config(export_overrides(tiny_ckpt, synthetic_root, output), "export"))
    assert summary["parity"]["passed"]
    assert summary["parity"]["num_images"] == 16  # the validation half of the synthetic cells
    assert summary["parity"]["max_abs_diff"] <= 1e-4
    assert json.loads((tmp_path / "export.json").read_text()) == summary
    assert summary["input"]["shape"] == ["batch", 1, 32, 32]
    assert (summary["input_dtype"], summary["class_names"]) == (
        "uint8",
        ["functional", "defective"],
    )

    session = ort.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    (graph_input,) = session.get_inputs()
    assert (graph_input.type, graph_input.shape[1:]) == ("tensor(uint8)", [1, 32, 32])
    info = read_model_info(tiny_ckpt)
    cells = read_input(str(synthetic_root), info.class_names)
    images, _ = decode(cells.paths[:5], 32, "error")
    images = images[:, None]  # (5, 1, 32, 32) uint8
    with torch.no_grad():
        expected = ProbabilityModel(load_model(info).net).eval()(torch.from_numpy(images)).numpy()
    for batch in (images[:1], images):
        (probs,) = session.run(None, {graph_input.name: batch})
        assert probs.shape == (len(batch), 2)
        np.testing.assert_allclose(probs, expected[: len(batch)], atol=1e-4)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)


def test_torchscript_export_passes_the_same_check(
    tiny_ckpt, synthetic_root, compose_config, tmp_path
):
    output = tmp_path / "model.pt"
    overrides = [*export_overrides(tiny_ckpt, synthetic_root, output), "format=torchscript"]
    summary = export(compose_config(overrides, "export"))
    assert summary["format"] == "torchscript"
    assert summary["parity"]["passed"]
    assert output.is_file()


def test_a_failed_check_exits_non_zero(tiny_ckpt, synthetic_root, tmp_path):
    output = tmp_path / "model.onnx"
    # a negative tolerance no export can meet: the failure path of the console script
    args = [*export_overrides(tiny_ckpt, synthetic_root, output), "check.tolerance=-1"]
    result = run_cli([SOLAR_EXPORT, *args], cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Parity FAILED" in result.stdout + result.stderr
    assert json.loads((tmp_path / "export.json").read_text())["parity"]["passed"] is False
