"""A run killed mid-training and resumed with `ckpt_path=last` ends as if never stopped; Ctrl-C
ends a run cleanly with a checkpoint, partial metrics and exit 130."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import WeightedRandomSampler

from solar_defect.cli import EXIT_INTERRUPTED
from solar_defect.data import ELDataModule
from solar_defect.resume import collect_rng_states, set_rng_states
from tests.conftest import SOLAR_TRAIN, run_cli, tiny_run_overrides

INTERRUPTED_EPOCHS = 100
EPOCHS = 4


def resumable_overrides(data_root: Path, tmp_path: Path) -> list[str]:
    """Tiny run long enough to be stopped in the middle; every kind of randomness switched on:
    shuffling, online augmentation drawn in DataLoader workers, and a sanity check."""
    return [
        *tiny_run_overrides(data_root, tmp_path),
        f"trainer.max_epochs={EPOCHS}",
        "trainer.num_sanity_val_steps=1",
        "augmentation=targeted_online",
        "data.num_workers=2",
        "logger=csv",
    ]


def start(args: list[str], cwd: Path, name: str) -> subprocess.Popen:
    """`args` in the background, output to files (a full pipe would stall a busy run).

    SIGINT is reset to its default in the child: a shell that starts the test run in the
    background (`make test &`) ignores SIGINT, the child would inherit that, and Python would
    then never turn Ctrl-C into KeyboardInterrupt.
    """
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    with (cwd / f"{name}.out").open("w") as out, (cwd / f"{name}.err").open("w") as err:
        return subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=err,
            text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )


def output(cwd: Path, name: str) -> tuple[str, str]:
    return (cwd / f"{name}.out").read_text(), (cwd / f"{name}.err").read_text()


def wait_for_epoch_checkpoint(
    path: Path, process: subprocess.Popen, epoch: int, timeout: float = 600
) -> dict[str, Any]:
    """Poll until `path` holds a checkpoint of `epoch` or later (each new version loaded once)."""
    deadline, seen = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before it could be stopped"
        stat = path.stat() if path.is_file() else None
        version = (stat.st_mtime_ns, stat.st_size) if stat else None
        if version is not None and version != seen:
            seen = version
            # Lightning replaces the file atomically, so a read sees one whole version
            checkpoint = torch.load(path, map_location="cpu", weights_only=False)
            if checkpoint["epoch"] >= epoch:
                return checkpoint
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint of epoch {epoch} in {timeout} s")


def comparable(run_dir: Path) -> dict[str, Any]:
    """What must not depend on the run having been stopped: metrics, counts, best epoch, report."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {
        "val": metrics["val"],
        "test": metrics["test"],
        "train_counts": metrics["train_counts"],
        "val_counts": metrics["val_counts"],
        "best": Path(metrics["best_checkpoint"]).name,
        "interrupted": metrics.get("interrupted", False),
        "sensitivity": json.loads((run_dir / "sensitivity" / "validate.json").read_text()),
    }


@pytest.mark.slow
def test_killed_run_resumed_from_last_ckpt_ends_like_an_uninterrupted_run(synthetic_root, tmp_path):
    whole_dir, stopped_dir = tmp_path / "whole", tmp_path / "stopped"
    whole_args = [SOLAR_TRAIN, *resumable_overrides(synthetic_root, whole_dir)]
    whole = start(whole_args, tmp_path, "whole")
    args = [SOLAR_TRAIN, *resumable_overrides(synthetic_root, stopped_dir)]
    stopped = start(args, tmp_path, "stopped")
    last = stopped_dir / "run" / "checkpoints" / "last.ckpt"
    try:
        wait_for_epoch_checkpoint(last, stopped, epoch=1)
        stopped.send_signal(signal.SIGKILL)  # no chance to clean up, as with a lost node
        stopped.wait(timeout=60)
        whole.wait(timeout=900)
    finally:
        for process in (whole, stopped):
            if process.poll() is None:
                process.kill()
    assert stopped.returncode == -signal.SIGKILL
    assert whole.returncode == 0, output(tmp_path, "whole")[1][-3000:]
    assert not (stopped_dir / "run" / "metrics.json").exists()
    epoch_at_kill = torch.load(last, map_location="cpu", weights_only=False)["epoch"]
    assert 1 <= epoch_at_kill < EPOCHS - 1

    resumed = run_cli([*args, "ckpt_path=last"], cwd=tmp_path)

    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert comparable(stopped_dir / "run") == comparable(whole_dir / "run")


@pytest.mark.slow
def test_ctrl_c_saves_last_ckpt_and_partial_metrics_then_exits_130(synthetic_root, tmp_path):
    base = [SOLAR_TRAIN, *tiny_run_overrides(synthetic_root, tmp_path), "logger=csv"]
    # far more epochs than it runs: however slow the machine, the signal comes mid-training
    args = [*base, f"trainer.max_epochs={INTERRUPTED_EPOCHS}"]
    run_dir = tmp_path / "run"
    last = run_dir / "checkpoints" / "last.ckpt"
    process = start(args, tmp_path, "interrupted")
    try:
        at_epoch_end = wait_for_epoch_checkpoint(last, process, epoch=1)
        process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        process.wait(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()

    out, err = output(tmp_path, "interrupted")
    assert process.returncode == EXIT_INTERRUPTED, err[-3000:]
    assert "Traceback" not in out + err
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["interrupted"] is True
    assert Path(metrics["last_checkpoint"]).resolve() == last.resolve()
    assert 0.0 <= metrics["val"]["val/acc"] <= 1.0
    assert metrics["val_counts"] == {"functional": 8, "defective": 8}
    at_interrupt = torch.load(last, map_location="cpu", weights_only=True)
    assert at_interrupt["global_step"] >= at_epoch_end["global_step"]
    assert at_interrupt["epoch"] < INTERRUPTED_EPOCHS

    finish_after = at_interrupt["epoch"] + 2
    resumed = run_cli([*base, f"trainer.max_epochs={finish_after}", "ckpt_path=last"], cwd=tmp_path)

    assert resumed.returncode == 0, resumed.stderr[-3000:]
    finished = json.loads((run_dir / "metrics.json").read_text())
    assert "interrupted" not in finished
    assert finished["val_counts"] == metrics["val_counts"]


def test_rng_states_round_trip_through_a_weights_only_checkpoint(tmp_path):
    torch.manual_seed(3)
    np.random.seed(3)
    states = collect_rng_states()
    expected = (torch.rand(4), np.random.rand(4))
    torch.save({"rng": states}, tmp_path / "states.ckpt")
    torch.manual_seed(99)
    np.random.seed(99)

    set_rng_states(torch.load(tmp_path / "states.ckpt", weights_only=True)["rng"])

    assert torch.equal(torch.rand(4), expected[0])
    assert np.array_equal(np.random.rand(4), expected[1])


def test_weighted_sampler_goes_on_from_its_saved_state(synthetic_root, tmp_path):
    def datamodule() -> ELDataModule:
        dm = ELDataModule(
            source="folder",
            root=str(synthetic_root),
            image_size=32,
            batch_size=8,
            balance="sampler",
            cache_dir=str(tmp_path / "cache"),
        )
        dm.setup("fit")
        return dm

    def epoch(dm: ELDataModule) -> list[int]:
        loader = dm.train_dataloader()
        assert isinstance(loader.sampler, WeightedRandomSampler)
        return list(loader.sampler)

    whole = datamodule()
    first = epoch(whole)
    saved = whole.state_dict()
    second = epoch(whole)
    assert second != first  # a new draw every epoch

    resumed = datamodule()
    resumed.load_state_dict(saved)
    assert epoch(resumed) == second
