"""`solar-export`: the model as ONNX (or TorchScript), checked against PyTorch on real cells.

The exported graph takes what the data pipeline makes, uint8 gray cells (B, 1, S, S), and returns
class probabilities (B, C): normalisation is inside `GrayClassifier` and the softmax is added
here, so a deployment only has to decode, convert to gray and resize (`cv2.INTER_AREA`) to S.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from solar_defect.cli import hydra_main
from solar_defect.errors import UserInputError
from solar_defect.predict import (
    ModelInfo,
    check_output,
    check_threshold,
    decode,
    load_model,
    read_input,
    read_model_info,
)

log = logging.getLogger(__name__)

FORMATS = {"onnx": "model.onnx", "torchscript": "model.pt"}
INPUT_NAME, OUTPUT_NAME = "images", "probabilities"
EXIT_PARITY_FAILED = 1

Runner = Callable[[np.ndarray], np.ndarray]  # (B, 1, S, S) uint8 -> (B, C) float32


class ProbabilityModel(nn.Module):
    """uint8 (B, 1, S, S) in, class probabilities (B, C) out: all a deployment calls."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images).float().softmax(dim=1)


def export_onnx(model: nn.Module, image_size: int, path: Path) -> None:
    """One self-contained `.onnx` file with a dynamic batch axis."""
    example = torch.zeros(2, 1, image_size, image_size, dtype=torch.uint8)  # batch > 1: not fixed
    torch.onnx.export(
        model,
        (example,),
        str(path),
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes={INPUT_NAME: {0: torch.export.Dim("batch")}},
        external_data=False,  # weights inside the file: one artefact to ship
        verbose=False,
    )


def export_torchscript(model: nn.Module, image_size: int, path: Path) -> None:
    """A traced TorchScript module (ResNets have no data-dependent control flow to lose)."""
    example = torch.zeros(2, 1, image_size, image_size, dtype=torch.uint8)
    torch.jit.trace(model, example).save(str(path))


def load_runner(fmt: str, path: Path) -> Runner:
    """A function that runs the exported file the way a deployment would."""
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda images: session.run([OUTPUT_NAME], {INPUT_NAME: images})[0]
    module = torch.jit.load(str(path), map_location="cpu").eval()

    def run(images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(images)).numpy()

    return run


def parity(
    reference: nn.Module, run: Runner, images: np.ndarray, batch_sizes: list[int]
) -> dict[str, Any]:
    """Max abs difference of probabilities, exported vs PyTorch, at each batch size.

    Args:
        reference: the PyTorch model that was exported.
        run: the exported model (see `load_runner`).
        images: (N, 1, S, S) uint8 cells.
        batch_sizes: batch sizes to run the exported model at (its batch axis is dynamic).
    """

    def in_batches(model: Runner, size: int) -> np.ndarray:
        return np.concatenate([model(images[i : i + size]) for i in range(0, len(images), size)])

    def torch_run(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return reference(torch.from_numpy(batch)).numpy()

    expected = in_batches(torch_run, max(batch_sizes))  # batched: bounded memory
    runs = []
    for size in batch_sizes:
        got = in_batches(run, size)
        runs.append({"batch_size": size, "max_abs_diff": float(np.abs(got - expected).max())})
    worst = max(r["max_abs_diff"] for r in runs)
    return {"num_images": len(images), "max_abs_diff": worst, "runs": runs}


def check_cells(cfg: DictConfig, info: ModelInfo) -> np.ndarray:
    """(N, 1, S, S) uint8 real cells: `check.input` images, else validation cells of `cfg.data`.

    Validation cells are taken evenly spread over the split (its order follows the source).
    """
    num = int(cfg.check.num_images)
    if cfg.check.get("input"):
        cells = read_input(cfg.check.input, info.class_names)
        images, bad = decode(cells.paths[:num], info.image_size, "skip")
        images = np.delete(images, bad, axis=0)
    else:
        datamodule = instantiate(cfg.data, image_size=info.image_size)
        datamodule.prepare_data()
        datamodule.setup("validate")
        dataset = datamodule.datasets["val"]
        rows = np.unique(np.linspace(0, len(dataset) - 1, min(num, len(dataset))).astype(int))
        images = dataset.__getitems__(rows.tolist())[0].numpy()[:, 0]
    if not len(images):
        raise UserInputError("no readable images to check the export on: set check.input")
    return np.ascontiguousarray(images[:, None])


def export(cfg: DictConfig) -> dict[str, Any]:
    """Export `cfg.ckpt_path`, check it, write `export.json`; returns that file's content."""
    fmt = str(cfg.format)
    if fmt not in FORMATS:
        raise UserInputError(f"format must be one of {list(FORMATS)}, got {fmt!r}")
    info = read_model_info(cfg.get("ckpt_path"))
    output = Path(str(cfg.output)) if cfg.get("output") else info.ckpt_path.parent / FORMATS[fmt]
    check_output(output)
    tolerance = float(cfg.check.tolerance)
    batch_sizes = [int(b) for b in cfg.check.batch_sizes]
    if not batch_sizes or min(batch_sizes) < 1 or int(cfg.check.num_images) < 1:
        raise UserInputError(
            "check.batch_sizes must list sizes >= 1 and check.num_images be >= 1, got "
            f"{batch_sizes} and {cfg.check.num_images}"
        )
    threshold = check_threshold(cfg.get("threshold"), info.class_names)

    model = ProbabilityModel(load_model(info).net).eval()
    log.info("Exporting %s to %s (%s)", info.ckpt_path, output, fmt)
    exporter = export_onnx if fmt == "onnx" else export_torchscript
    exporter(model, info.image_size, output)

    images = check_cells(cfg, info)
    result = parity(model, load_runner(fmt, output), images, batch_sizes)
    result.update(tolerance=tolerance, passed=result["max_abs_diff"] <= tolerance)
    summary = {
        "format": fmt,
        "file": output.name,
        "checkpoint": str(info.ckpt_path),
        "input": {"name": INPUT_NAME, "shape": ["batch", 1, info.image_size, info.image_size]},
        "input_dtype": "uint8",
        "output": {"name": OUTPUT_NAME, "shape": ["batch", len(info.class_names)]},
        "output_dtype": "float32",
        "class_names": info.class_names,
        "image_size": info.image_size,
        "preprocessing": (
            "decode, convert to gray (8-bit; 16-bit / 257), resize to image_size x image_size "
            "with cv2.INTER_AREA; normalisation is inside the model"
        ),
        "threshold": threshold,
        "decision": (
            "argmax" if threshold is None else f"{info.class_names[1]} iff P >= {threshold}"
        ),
        "parity": result,
    }
    (output.parent / "export.json").write_text(json.dumps(summary, indent=2))
    log.info("Wrote %s and %s", output, output.parent / "export.json")
    return summary


@hydra_main("solar-export", config_name="export")
def main(cfg: DictConfig) -> None:
    """Console entry point: exit 1 when the exported model does not match PyTorch."""
    if OmegaConf.is_missing(cfg, "ckpt_path"):
        raise UserInputError(
            "ckpt_path is required: solar-export ckpt_path=RUN/checkpoints/FILE.ckpt "
            "[format=onnx|torchscript] [output=FILE]"
        )
    OmegaConf.resolve(cfg)
    summary = export(cfg)
    check = summary["parity"]
    runs = ", ".join(f"batch {r['batch_size']}: {r['max_abs_diff']:.2e}" for r in check["runs"])
    log.log(
        logging.INFO if check["passed"] else logging.ERROR,
        "Parity %s on %d real cells: max abs difference of probabilities %.2e (%s), tolerance %.0e",
        "passed" if check["passed"] else "FAILED",
        check["num_images"],
        check["max_abs_diff"],
        runs,
        check["tolerance"],
    )
    if not check["passed"]:
        raise SystemExit(EXIT_PARITY_FAILED)


if __name__ == "__main__":
    main()
