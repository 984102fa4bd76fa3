"""`solar-export` of a tiny checkpoint: ONNX parity and dynamic batch, TorchScript, failures."""

import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from solar_defect.export import ProbabilityModel, export
from solar_defect.predict import decode, load_model, read_input, read_model_info
from tests.conftest import run_cli

SOLAR_EXPORT = str(Path(sys.executable).parent / "solar-export")


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
    tiny_checkpoint, synthetic_root, compose_config, tmp_path
):
    output = tmp_path / "model.onnx"
    summary = export(
        compose_config(export_overrides(tiny_checkpoint, synthetic_root, output), "export")
    )
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
    info = read_model_info(tiny_checkpoint)
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
    tiny_checkpoint, synthetic_root, compose_config, tmp_path
):
    output = tmp_path / "model.pt"
    overrides = [*export_overrides(tiny_checkpoint, synthetic_root, output), "format=torchscript"]
    summary = export(compose_config(overrides, "export"))
    assert summary["format"] == "torchscript"
    assert summary["parity"]["passed"]
    assert output.is_file()


def test_a_failed_check_exits_non_zero(tiny_checkpoint, synthetic_root, tmp_path):
    output = tmp_path / "model.onnx"
    # a negative tolerance no export can meet: the failure path of the console script
    args = [*export_overrides(tiny_checkpoint, synthetic_root, output), "check.tolerance=-1"]
    result = run_cli([SOLAR_EXPORT, *args], cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Parity FAILED" in result.stdout + result.stderr
    assert json.loads((tmp_path / "export.json").read_text())["parity"]["passed"] is False
