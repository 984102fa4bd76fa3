"""Is the GPU fed? `seed_targeted` (ResNet50, 224 px, bf16) for two epochs, in images/s.

Prints three rates, each measured in this one run:
* loader alone: `ELDataModule`'s training loader (decode cache, targeted expand recipe) for one
  full epoch, batches copied to the GPU (pinned, non-blocking), after a warm-up epoch;
* model alone: `DefectClassifier` training steps (AdamW, bf16 autocast, channels_last) on
  synthetic uint8 batches already on the GPU, bare and with the module's metric updates, each
  with its count of host-device syncs a step (CUDA sync debug mode);
* together: `trainer.fit` of `solar-train experiment=seed_targeted trainer=gpu` for two epochs
  with the default callbacks and logger; the rate of epoch 2's training batches;
and the ratio loader / model, which must be >= 1 for the GPU not to wait on data.

On an H200 it takes a few minutes, mostly start-up and the decode cache (built fresh in a
temporary folder, so nothing depends on the machine's state). `--smoke` runs the same code on a
CPU with ResNet18 at 64 px and a few batches, to check it does not crash.

    python benchmarks/gpu_seed_targeted.py [--workers 4]
    python benchmarks/gpu_seed_targeted.py --smoke
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig

from solar_defect.cli import CONFIG_DIR
from solar_defect.models import DefectClassifier
from solar_defect.runs import instantiate_all


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class EpochRate(pl.Callback):
    """Training images/s of each epoch, first batch start to last batch end."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.rates = device, []
        self._start, self._images = 0.0, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == 0:
            sync(self.device)
            self._start, self._images = time.perf_counter(), 0
        self._images += len(batch[0])

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        sync(self.device)
        self.rates.append(self._images / (time.perf_counter() - self._start))


def config(args: argparse.Namespace, out: Path) -> DictConfig:
    overrides = [
        "experiment=seed_targeted",
        f"trainer.max_epochs={args.epochs}",
        f"data.num_workers={args.workers}",
        f"paths.output_dir={out}",
        f"paths.cache_dir={out / 'cache'}",
        # a bar redrawn per step is noise in a benchmark's log
        "callbacks.rich_progress_bar=null",
        "trainer.enable_progress_bar=false",
    ]
    if args.smoke:
        overrides += [
            "trainer=cpu",
            "trainer.precision=bf16-mixed",
            "model=resnet18",
            "data.image_size=64",
            f"trainer.limit_train_batches={args.batches}",
            f"trainer.limit_val_batches={args.batches}",
        ]
    else:
        overrides += ["trainer=gpu", "data.pin_memory=true", "model.channels_last=true"]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("train", overrides=overrides)


def loader_rate(dm, device: torch.device, max_batches: int | None) -> float:
    """Images/s of the training loader, batches landed on `device`; after one warm-up pass."""
    loader = dm.train_dataloader()
    for _ in range(2):  # the first pass starts the (persistent) workers; the second is timed
        sync(device)
        start, images = time.perf_counter(), 0
        for i, (x, y, _) in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            images += len(x)
        sync(device)
        seconds = time.perf_counter() - start
    del loader
    return images / seconds


def synthetic_batch(cfg: DictConfig, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Random uint8 images, labels and indices, already on the device."""
    size, batch = cfg.data.image_size, cfg.data.batch_size
    generator = torch.Generator(device=device).manual_seed(0)
    images = torch.randint(
        0, 256, (batch, 1, size, size), dtype=torch.uint8, device=device, generator=generator
    )
    labels = torch.randint(0, 2, (batch,), device=device, generator=generator)
    return images, labels, torch.arange(batch, device=device)


def model_rate(
    module: DefectClassifier,
    cfg: DictConfig,
    device: torch.device,
    warmup: int,
    steps: int,
    bookkeeping: bool = False,
) -> tuple[float, int]:
    """(images/s, host syncs in one step) of training steps on a batch already on the device.

    With `bookkeeping`, each step is the module's own `_step` (forward, loss, torchmetrics and
    loss-metric updates), so the difference to the bare step is what the metrics cost.
    """
    module = module.to(device).train()
    optimizer = torch.optim.AdamW(module.net.parameters(), lr=1e-3, weight_decay=1e-4)
    batch = synthetic_batch(cfg, device)
    bf16 = str(cfg.trainer.precision).startswith("bf16")

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            if bookkeeping:
                loss = module._step(batch, "train")["loss"]
            else:
                loss = module.criterion(module(batch[0]), batch[1])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    syncs = count_syncs(step, device)
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return steps * len(batch[0]) / (time.perf_counter() - start), syncs


def count_syncs(fn: Callable[[], None], device: torch.device) -> int:
    """Host-device synchronisations while `fn` runs (CUDA's sync debug mode; -1 on a CPU)."""
    if device.type != "cuda":
        fn()
        return -1
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fn()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny CPU run: does it crash?")
    parser.add_argument("--workers", type=int, default=None, help="default: 4 (GPU), 0 (smoke)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batches", type=int, default=3, help="batches per loop with --smoke")
    args = parser.parse_args()
    if args.workers is None:
        args.workers = 0 if args.smoke else 4
    if not args.smoke and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --smoke on a CPU")
    device = torch.device("cpu" if args.smoke else "cuda")
    out = Path(tempfile.mkdtemp(prefix="bench_gpu_"))
    cfg = config(args, out)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"{dt.datetime.now():%Y-%m-%d %H:%M}  {name}; torch {torch.__version__}; {load()}")
    print(
        f"{cfg.model.name} at {cfg.data.image_size} px, batch {cfg.data.batch_size}, "
        f"{cfg.trainer.precision}, channels_last={cfg.model.channels_last}, "
        f"{cfg.data.num_workers} workers"
    )
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    start = time.perf_counter()
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup("fit")
    print(f"decode cache built in {time.perf_counter() - start:.1f} s; train {dm.counts('train')}")

    few = args.batches if args.smoke else None
    loader = loader_rate(dm, device, few)
    print(f"loader alone   {loader:9.0f} img/s", flush=True)
    warmup, steps = (2, few) if args.smoke else (10, 50)
    rates = {}
    for bookkeeping in (False, True):
        probe = instantiate(cfg.model, class_names=dm.class_names, _convert_="all")
        rates[bookkeeping] = model_rate(probe, cfg, device, warmup, steps, bookkeeping)
        del probe
    model = rates[False][0]
    print(f"model alone    {model:9.0f} img/s (host syncs a step: {rates[False][1]})")
    print(
        f"  + metrics    {rates[True][0]:9.0f} img/s (host syncs a step: {rates[True][1]}): "
        "the module's `_step`, torchmetrics updates included",
        flush=True,
    )

    module = instantiate(cfg.model, class_names=dm.class_names, _convert_="all")
    rate = EpochRate(device)
    trainer = instantiate(
        cfg.trainer,
        callbacks=[*instantiate_all(cfg.get("callbacks")), rate],
        logger=instantiate_all(cfg.get("logger")) or False,
    )
    start = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    fit = time.perf_counter() - start
    epochs = ", ".join(f"{r:.0f}" for r in rate.rates)
    print(f"together       {rate.rates[-1]:9.0f} img/s (epochs: {epochs}; fit {fit:.1f} s)")
    verdict = "ok, the loader keeps up" if loader >= model else "LOADER-BOUND"
    print(f"ratio loader / model  {loader / model:.2f}  ({verdict})")
    print(f"together / model      {rate.rates[-1] / model:.2f}")
    print(load())


if __name__ == "__main__":
    main()
