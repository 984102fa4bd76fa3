"""The same config and seed give the same run on a CPU: metrics, sensitivity report, weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from solar_defect.train import train
from tests.conftest import tiny_run_overrides


@pytest.mark.slow
def test_same_config_and_seed_give_identical_results(compose_config, synthetic_root, tmp_path):
    outcomes = []
    for name in ("first", "second"):
        cfg = compose_config(
            [
                *tiny_run_overrides(synthetic_root, tmp_path / name),
                "trainer.max_epochs=2",
                # every source of randomness: online augmentation, weighted sampling
                "augmentation=targeted_online",
                "balance=sampler",
                "logger=csv",
            ]
        )
        results = train(cfg)
        run = Path(cfg.paths.output_dir)
        weights = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
        outcomes.append(
            {
                "val": results["val"],
                "counts": (results["train_counts"], results["val_counts"]),
                "best": Path(results["best_checkpoint"]).name,
                "metrics.json": json.loads((run / "metrics.json").read_text())["val"],
                "sensitivity": [
                    json.loads((run / "sensitivity" / f"{tag}.json").read_text())
                    for tag in ("epoch_000", "epoch_001", "validate")
                ],
                "predictions": (run / "predictions" / "validate.csv").read_text(),
                "weights": weights,
            }
        )
    first, second = outcomes
    weights = first.pop("weights"), second.pop("weights")
    assert first == second
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])
