"""What a tiny run puts in TensorBoard: augmentation grid, HParams, sensitivity images."""

from pathlib import Path

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from solar_defect.analysis.augmentation_grid import augmentation_grid
from solar_defect.data.recipes import parse_recipe
from solar_defect.train import train

CLASSES = ["functional", "defective"]


def test_grid_shows_each_transform_only_for_its_class():
    images = np.stack([np.full((8, 8), 10 * i, np.uint8) for i in range(1, 7)])
    labels = np.array([0, 0, 0, 1, 1, 1])
    recipe = parse_recipe(
        {"classes": {"functional": ["identity"], "defective": ["identity", "hflip", "vflip"]}},
        CLASSES,
    )
    grid = augmentation_grid(images, labels, CLASSES, recipe, per_class=2)
    # 4 rows of 8 px + 3 gaps; 3 columns of 8 px + 2 gaps
    assert grid.shape == (4 * 8 + 3 * 4, 3 * 8 + 2 * 4)
    functional_padding = grid[:8, 12:]
    assert not functional_padding[:, :8].any()  # no transforms beyond identity
    assert grid[-8:, 24:].min() > 0  # defective rows are filled


def test_tiny_run_logs_grid_hparams_and_sensitivity(compose_config, tiny_overrides):
    cfg = compose_config([*tiny_overrides, "augmentation=targeted"])
    results = train(cfg)
    events = EventAccumulator(
        str(Path(cfg.paths.output_dir) / "tensorboard"), size_guidance={"images": 0, "tensors": 0}
    )
    events.Reload()
    images = set(events.Tags()["images"])
    assert {
        "train/augmentation_grid",
        "val/confusion_matrix",
        "val/sensitivity/brightness",
        "val/sensitivity/clarity",
    } <= images
    scalars = set(events.Tags()["scalars"])
    assert {
        "val/recall/defective",
        "val/sensitivity/brightness/std/defective",
        "hp/acc",
        "hp/recall/defective",
    } <= scalars
    hp_acc = events.Scalars("hp/acc")[-1].value
    assert hp_acc == np.float32(results["val"]["val/acc"])
    plugins = events.PluginTagToContent("hparams")
    assert "_hparams_/session_start_info" in plugins
