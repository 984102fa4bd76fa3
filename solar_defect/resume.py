"""Stopping a training run and going on where it stopped: RNG state in checkpoints, Ctrl-C.

Lightning restores weights, optimizer, scheduler, loops and callback state from a checkpoint, but
not the random number generators. A resumed run would then shuffle, augment (online recipes) and
seed its DataLoader workers differently from the run it continues, and end elsewhere.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.trainer.states import TrainerFn

log = logging.getLogger(__name__)

RNG_KEY = "rng_states"


def collect_rng_states() -> dict[str, Any]:
    """torch (CPU and CUDA), numpy and Python RNG states, as tensors and plain values only.

    Plain values keep checkpoints loadable with `torch.load(weights_only=True)`.
    """
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "python": random.getstate(),
    }


def set_rng_states(states: dict[str, Any]) -> None:
    """Undo `collect_rng_states`: every generator continues where the saved run left it."""
    torch.set_rng_state(states["torch"])
    cuda = states.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))


class RngState(pl.Callback):
    """Saves the RNG states in every checkpoint and restores them when `fit` resumes from one.

    ModelCheckpoint writes at the end of a validation epoch; between that moment and the first
    batch of the next epoch nothing draws random numbers, in the run that goes on as in the run
    resumed from the file, so both draw the same shuffles and augmentations from there on. The
    sanity check of the resumed run does not disturb this: Lightning isolates its RNG use.
    """

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[RNG_KEY] = collect_rng_states()

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        # validate/test load checkpoints too, and draw nothing: only a resumed fit needs them
        if trainer.state.fn == TrainerFn.FITTING and RNG_KEY in checkpoint:
            set_rng_states(checkpoint[RNG_KEY])


class InterruptCheckpoint(pl.Callback):
    """On Ctrl-C during `fit`, writes the run's `last.ckpt` (what `ckpt_path=last` resumes).

    Lightning turns Ctrl-C into a clean stop and calls `on_exception`; the checkpoint taken here
    keeps the work since the last epoch end. Resuming from it with `ckpt_path=last` continues
    mid-epoch, which Lightning does with a fresh pass over the data (not bit-exact, unlike an
    end-of-epoch `last.ckpt`). Under DDP the ranks may be stopped inside a collective, so
    nothing is written and the last completed epoch's `last.ckpt` stays.

    Args:
        path: where the run keeps `last.ckpt`.

    Attributes:
        saved: path of the checkpoint written at the interruption, else None.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.saved: str | None = None

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if not isinstance(exception, KeyboardInterrupt) or trainer.state.fn != TrainerFn.FITTING:
            return
        if not any(isinstance(c, ModelCheckpoint) for c in trainer.checkpoint_callbacks):
            return  # a run that keeps no checkpoints (callbacks=none, fast_dev_run)
        if trainer.world_size > 1:
            log.warning("Interrupted under DDP: keeping the last completed epoch's last.ckpt")
            return
        trainer.save_checkpoint(self.path)
        self.saved = str(self.path)
