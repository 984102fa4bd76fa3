"""Grad-CAM: target layer rule, maps of a trained tiny model, the grid, callback and report."""

import csv
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from solar_defect.analysis.gradcam import (
    GRADCAM_PNG,
    confident_errors,
    gradcam_grid,
    gradcam_maps,
    target_layer,
)
from solar_defect.errors import UserInputError
from solar_defect.evaluate import evaluate
from solar_defect.models.backbone import GrayClassifier, build_backbone
from solar_defect.predict import decode, load_model, read_input, read_model_info
from solar_defect.train import train
from tests.conftest import compose_as_cli, tiny_run_overrides

# ResNet18's last block is 1/32 of the input: 2x2 at 64 px (at 32 px it would be one cell)
IMAGE_SIZE = 64


def data_overrides(data_root: Path, run_dir: Path) -> list[str]:
    return [
        *(o for o in tiny_run_overrides(data_root, run_dir) if not o.startswith("model=")),
        f"data.image_size={IMAGE_SIZE}",
    ]


@pytest.fixture(scope="module")
def tiny_ckpt(synthetic_root, tmp_path_factory) -> Path:
    """Best checkpoint of a two-epoch 64 px run with the Grad-CAM callback every epoch."""
    run_dir = tmp_path_factory.mktemp("gradcam_train")
    overrides = [
        *data_overrides(synthetic_root, run_dir),
        "model=resnet18",
        "trainer.max_epochs=2",
        "callbacks=[default,gradcam]",
        "callbacks.gradcam.every_n_epochs=1",
    ]
    return Path(train(compose_as_cli(overrides, run_dir))["best_checkpoint"])


@pytest.fixture(scope="module")
def predicted(tiny_ckpt, synthetic_root):
    """The trained net and its predictions on all synthetic cells."""
    info = read_model_info(tiny_ckpt)
    net = load_model(info).net
    images, _ = decode(read_input(str(synthetic_root), info.class_names).paths, IMAGE_SIZE, "error")
    with torch.no_grad():
        probs = net(torch.from_numpy(images[:, None])).softmax(dim=1).numpy()
    return net, images, probs, info.class_names


def has_errors(predictions_csv: Path) -> bool:
    with predictions_csv.open(newline="") as f:
        return any(row["label"] != row["pred"] for row in csv.DictReader(f))


def test_target_layer_is_the_last_conv_block():
    resnet = GrayClassifier(build_backbone("resnet18", 2))
    assert target_layer(resnet) is resnet.backbone.layer4[-1]
    mobilenet = GrayClassifier(build_backbone("mobilenet_v3_small", 2))
    assert target_layer(mobilenet) is mobilenet.backbone.features[-1]
    assert target_layer(resnet, "backbone.layer3") is resnet.backbone.layer3
    with pytest.raises(UserInputError, match="is not a sub-module"):
        target_layer(resnet, "backbone.layer9")


def test_confident_errors_are_the_surest_mistakes():
    labels = np.array([0, 0, 1, 1, 0])
    preds = np.array([1, 0, 0, 0, 1])
    probs = np.array([[0.4, 0.6], [0.9, 0.1], [0.95, 0.05], [0.7, 0.3], [0.2, 0.8]])
    assert confident_errors(labels, preds, probs, 3).tolist() == [2, 4, 3]
    assert confident_errors(labels, preds, probs, 1).tolist() == [2]
    assert confident_errors(labels, labels, probs, 3).tolist() == []


def test_maps_of_the_trained_model_show_a_location(predicted):
    net, images, probs, _ = predicted
    net.train()  # the mode it is in during fit; Grad-CAM must restore it
    maps = gradcam_maps(net, images[:8], probs[:8].argmax(axis=1))
    assert maps.shape == (8, IMAGE_SIZE, IMAGE_SIZE)
    assert maps.min() >= 0.0
    assert maps.max() <= 1.0
    assert maps.reshape(8, -1).std(axis=1).max() > 0.05  # not one flat value
    assert net.training
    assert all(p.grad is None for p in net.parameters())


def test_grid_has_one_tile_per_mistake(predicted):
    net, images, probs, class_names = predicted
    preds = probs.argmax(axis=1)
    wrong = 1 - preds  # call every cell a mistake, whatever the model learned
    one_row = gradcam_grid(net, images, wrong, preds, probs, class_names, n=4)
    two_rows = gradcam_grid(net, images, wrong, preds, probs, class_names, n=8)
    assert one_row.dtype == np.uint8
    assert one_row.ndim == 3
    assert one_row.shape[2] == 3
    assert two_rows.shape[1] == one_row.shape[1]
    assert two_rows.shape[0] > 1.5 * one_row.shape[0]
    assert one_row.std() > 0
    assert gradcam_grid(net, images, preds, preds, probs, class_names) is None


def test_callback_saves_the_grid_of_the_best_checkpoint(tiny_ckpt):
    run = tiny_ckpt.parent.parent
    final = has_errors(run / "predictions" / "validate.csv")
    assert (run / GRADCAM_PNG).is_file() == final
    any_epoch = any(has_errors(p) for p in (run / "predictions").glob("*.csv"))
    accumulator = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0})
    accumulator.Reload()
    assert ("val/gradcam" in accumulator.Tags()["images"]) == any_epoch


def test_eval_report_shows_the_grid(tiny_ckpt, synthetic_root, compose_config, tmp_path):
    cfg = compose_config(
        [f"ckpt_path={tiny_ckpt}", *data_overrides(synthetic_root, tmp_path / "eval")], "eval"
    )
    evaluate(cfg)
    run = Path(cfg.paths.output_dir)
    errors = has_errors(run / "predictions" / "validate.csv")
    assert (run / GRADCAM_PNG).is_file() == errors
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (run / "report.md").read_text())
    assert (GRADCAM_PNG in linked) == errors
