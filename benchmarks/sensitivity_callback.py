"""What the sensitivity callback costs a validation epoch, once features are cached.

Runs `trainer.validate` over the ELPV seed-protocol validation set (1,111 cells) with the
callback, timing the time the loop spends inside the callback's hooks against the whole
validation epoch, in the same run. Figures render in a worker thread; their time is printed
apart, as it does not hold up the loop.

    python benchmarks/sensitivity_callback.py [--model resnet18] [--image-size 128]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from functools import wraps
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger

from solar_defect.analysis.callback import SensitivityCallback
from solar_defect.data import ELDataModule
from solar_defect.models import DefectClassifier

HOOKS = ("on_validation_batch_end", "on_validation_epoch_end")


def timed(callback: SensitivityCallback, spent: dict[str, float]) -> None:
    """Wrap the hooks the loop waits for, adding their wall time to `spent`."""
    for name in (*HOOKS, "_finish_rendering"):
        original = getattr(callback, name)

        @wraps(original)
        def wrapper(*args, _original=original, _name=name, **kwargs):
            start = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                spent[_name] = spent.get(_name, 0.0) + time.perf_counter() - start

        setattr(callback, name, wrapper)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="bench_sensitivity_"))
    datamodule = ELDataModule(
        image_size=args.image_size, batch_size=args.batch_size, cache_dir="outputs/cache"
    )
    datamodule.prepare_data()  # decode cache built (or read) before timing
    datamodule.setup("validate")
    model = DefectClassifier(datamodule.class_names, name=args.model)
    callback = SensitivityCallback(str(out))
    spent: dict[str, float] = {}
    timed(callback, spent)
    trainer = pl.Trainer(
        accelerator="cpu",
        logger=TensorBoardLogger(str(out), name="tensorboard", version=""),
        callbacks=[callback],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    start = time.perf_counter()
    trainer.validate(model, datamodule=datamodule, verbose=False)
    epoch = time.perf_counter() - start - spent["_finish_rendering"]
    in_loop = sum(spent[h] for h in HOOKS)
    print(
        f"model {args.model} at {args.image_size} px, {len(datamodule.datasets['val'])} cells, "
        f"{torch.get_num_threads()} threads"
    )
    print(f"validation epoch          {epoch:8.3f} s")
    print(f"callback, in the loop     {in_loop:8.3f} s")
    print(f"figures, worker thread    {spent['_finish_rendering']:8.3f} s (waited for at teardown)")
    print(f"ratio callback / epoch    {100 * in_loop / epoch:8.2f} %")


if __name__ == "__main__":
    main()
