"""What the Lightning Trainer costs over a plain PyTorch loop, in training steps/s, side by side.

Both sides train the same network (`DefectClassifier.net`, same initial weights), with AdamW and
OneCycleLR as in conf/model/resnet50.yaml, on the same pre-made uint8 batches held in memory
(taken once from `ELDataModule` on ELPV, seed protocol), for the same epochs, each followed by
the same validation batches.

* plain: `for images, labels, _ in batches: loss.backward(); opt.step(); sched.step()`, then
  validation forward passes under `torch.inference_mode`, then `torch.save` of weights and
  optimizer state (what a hand-written loop keeps so a run can resume).
* lightning: `solar-train`'s defaults composed from conf/: `DefectClassifier` with its
  torchmetrics (train and val), callbacks/default (the best epoch's weights, `last.ckpt` with
  the full training state, LR monitor, rich progress bar, sensitivity callback with figures,
  augmentation grid, HParams), TensorBoard logger, trainer/cpu (log_every_n_steps=10, 2
  sanity-check batches).
* Further variants drop one default at a time, to put a price on each (`--variants`).

Runs are interleaved (plain, lightning, ..., plain, lightning, ...) and medians reported. The
"train" columns time only the training batches of each epoch (from the first batch's start to
the last batch's end), the "fit" columns the whole call, validation and epoch ends included.

    python benchmarks/overhead.py [--model resnet18] [--image-size 64] [--epochs 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning.profilers import SimpleProfiler
from torch.utils.data import DataLoader, Dataset

from solar_defect.cli import CONFIG_DIR
from solar_defect.data import ELDataModule
from solar_defect.data.dataset import Batch
from solar_defect.models import DefectClassifier
from solar_defect.runs import instantiate_all

# variant -> overrides on top of the defaults (None: the plain loop)
VARIANTS: dict[str, list[str] | None] = {
    "plain": None,
    "lightning": [],
    "no_bar": ["callbacks.rich_progress_bar=null", "trainer.enable_progress_bar=false"],
    "no_ckpt": [
        "callbacks.model_checkpoint=null",
        "callbacks.last_checkpoint=null",
        "+trainer.enable_checkpointing=false",
    ],
    "no_sens": ["callbacks.sensitivity=null"],
    # the earlier default: best and last both with the optimizer state, two full saves an epoch
    "two_full_ckpt": [
        "callbacks.last_checkpoint=null",
        "callbacks.model_checkpoint.save_last=true",
        "callbacks.model_checkpoint.save_weights_only=false",
    ],
    "no_logger": [
        "~logger",
        "callbacks.lr_monitor=null",
        "callbacks.augmentation_grid=null",
        "callbacks.hparams=null",
    ],
    "bare": [
        "callbacks=none",
        "~logger",
        "trainer.enable_progress_bar=false",
        "+trainer.enable_checkpointing=false",
        "trainer.num_sanity_val_steps=0",
    ],
}


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


class Premade(Dataset):
    """Batches made once, served as they are (`batch_size=None`)."""

    def __init__(self, batches: list[Batch]) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> Batch:
        return self.batches[i]


def premade_loader(batches: list[Batch]) -> DataLoader:
    return DataLoader(Premade(batches), batch_size=None, shuffle=False, num_workers=0)


class PremadeDataModule(ELDataModule):
    """The real data module (splits, features for the sensitivity callback), pre-made loaders."""

    def __init__(self, num_train: int, num_val: int | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_train, self.num_val = num_train, num_val
        self.premade: dict[str, list[Batch]] = {}

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        if not self.premade:
            train = list(super().train_dataloader())
            self.premade["train"] = [train[i % len(train)] for i in range(self.num_train)]
            self.premade["val"] = list(super().val_dataloader())[: self.num_val]

    def train_dataloader(self) -> DataLoader:
        return premade_loader(self.premade["train"])

    def val_dataloader(self) -> DataLoader:
        return premade_loader(self.premade["val"])


class TrainTimer(pl.Callback):
    """Seconds from each epoch's first training batch start to its last batch end."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._start: float | None = None
        self._end = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == 0:
            self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._end = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self._start is not None:
            self.seconds += self._end - self._start
            self._start = None


def compose_config(args: argparse.Namespace, out: Path, overrides: list[str]) -> DictConfig:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(
            "train",
            overrides=[
                f"model={args.model}",
                "trainer=cpu",
                f"trainer.max_epochs={args.epochs}",
                f"data.image_size={args.image_size}",
                f"data.batch_size={args.batch_size}",
                f"paths.output_dir={out}",
                *overrides,
            ],
        )


def new_model(cfg: DictConfig, dm: ELDataModule) -> DefectClassifier:
    pl.seed_everything(0, verbose=False)  # the same initial weights on every side
    return instantiate(cfg.model, class_names=dm.class_names, _convert_="all")


def run_lightning(
    args: argparse.Namespace,
    dm: PremadeDataModule,
    overrides: list[str],
    profiler: SimpleProfiler | None = None,
) -> tuple[float, float]:
    """(fit seconds, training-batch seconds) of `trainer.fit` with the composed defaults."""
    out = Path(tempfile.mkdtemp(prefix="bench_overhead_"))
    cfg = compose_config(args, out, overrides)
    model = new_model(cfg, dm)
    timer = TrainTimer()
    callbacks = [*instantiate_all(cfg.get("callbacks")), timer]
    trainer = instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=instantiate_all(cfg.get("logger")) or False,
        enable_model_summary=False,
        profiler=profiler,
    )
    start = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    seconds = time.perf_counter() - start
    shutil.rmtree(out, ignore_errors=True)  # checkpoints: 2 x 128 MiB an epoch
    return seconds, timer.seconds


def run_plain(args: argparse.Namespace, dm: PremadeDataModule) -> tuple[float, float]:
    """(whole seconds, training-batch seconds) of the hand-written loop."""
    out = Path(tempfile.mkdtemp(prefix="bench_overhead_plain_"))
    cfg = compose_config(args, out, [])
    module = new_model(cfg, dm)
    net = module.net
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    train, val = premade_loader(dm.premade["train"]), premade_loader(dm.premade["val"])
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=1e-3, pct_start=0.2, total_steps=args.epochs * len(train)
    )
    criterion = torch.nn.CrossEntropyLoss()
    start, train_seconds = time.perf_counter(), 0.0
    for _ in range(args.epochs):
        net.train()
        epoch_start = time.perf_counter()
        for images, labels, _ in train:
            loss = criterion(net(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        train_seconds += time.perf_counter() - epoch_start
        net.eval()
        correct = 0
        with torch.inference_mode():
            for images, labels, _ in val:
                correct += int((net(images).argmax(1) == labels).sum())
        state = {"net": net.state_dict(), "optimizer": optimizer.state_dict()}
        torch.save(state, out / "last.pt")
    seconds = time.perf_counter() - start
    shutil.rmtree(out, ignore_errors=True)
    return seconds, train_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-batches", type=int, default=35, help="per epoch (ELPV: 35)")
    parser.add_argument("--val-batches", type=int, default=None, help="default: all (35)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", nargs="+", default=["plain", "lightning"], choices=VARIANTS)
    parser.add_argument("--threads", type=int, default=None, help="torch threads, both sides")
    parser.add_argument("--profile", action="store_true", help="then one profiled default run")
    parser.add_argument("--min-ms", type=float, default=20.0, help="profile rows to print")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dm = PremadeDataModule(
        args.train_batches,
        args.val_batches,
        image_size=args.image_size,
        batch_size=args.batch_size,
        cache_dir="outputs/cache",
    )
    dm.prepare_data()
    dm.setup("fit")
    steps = args.epochs * args.train_batches
    print(f"{dt.datetime.now():%Y-%m-%d %H:%M}  torch {torch.__version__}, pl {pl.__version__}")
    print(
        f"{args.model} at {args.image_size} px, batch {args.batch_size}, {args.epochs} epochs x "
        f"{args.train_batches} training steps + {len(dm.premade['val'])} validation batches; "
        f"{torch.get_num_threads()} threads; {load()}"
    )
    seconds: dict[str, list[tuple[float, float]]] = {v: [] for v in args.variants}
    for rep in range(args.repeats):
        for variant in args.variants:
            overrides = VARIANTS[variant]
            result = (
                run_plain(args, dm) if overrides is None else run_lightning(args, dm, overrides)
            )
            seconds[variant].append(result)
            print(
                f"  repeat {rep} {variant:>10}: fit {result[0]:7.2f} s, train {result[1]:7.2f} s"
                f"  ({os.getloadavg()[0]:.2f})",
                flush=True,
            )
    base = args.variants[0]
    fit0 = statistics.median(s[0] for s in seconds[base])
    train0 = statistics.median(s[1] for s in seconds[base])
    print(
        f"\nmedians of {args.repeats}; against {base} (>1: slower). 'pair' is the median of "
        "the ratios within each repeat, whose runs sat side by side in time"
    )
    print(
        f"{'variant':>10} {'fit s':>7} {'steps/s':>8} {'ratio':>6} {'pair':>6} {'+s/epoch':>9} "
        f"{'train s':>8} {'steps/s':>8} {'ratio':>6} {'pair':>6} {'+ms/step':>9}"
    )
    for variant, values in seconds.items():
        fit = statistics.median(s[0] for s in values)
        train = statistics.median(s[1] for s in values)
        pairs = [(v[0] / b[0], v[1] / b[1]) for v, b in zip(values, seconds[base], strict=True)]
        print(
            f"{variant:>10} {fit:7.2f} {steps / fit:8.3f} {fit / fit0:6.3f} "
            f"{statistics.median(p[0] for p in pairs):6.3f} {(fit - fit0) / args.epochs:9.2f} "
            f"{train:8.2f} {steps / train:8.3f} {train / train0:6.3f} "
            f"{statistics.median(p[1] for p in pairs):6.3f} "
            f"{1000 * (train - train0) / steps:9.1f}"
        )
    if args.profile:
        profile(args, dm)
    print(f"\n{load()}")


def profile(args: argparse.Namespace, dm: PremadeDataModule) -> None:
    """Where the Trainer's time goes, hook by hook, in one default run (SimpleProfiler)."""
    profiler = SimpleProfiler()
    fit, _ = run_lightning(args, dm, [], profiler)
    totals = {k: (sum(v), len(v)) for k, v in profiler.recorded_durations.items()}
    print(f"\nlightning with SimpleProfiler: fit {fit:.2f} s; actions over {args.min_ms} ms total")
    print(f"{'seconds':>8} {'calls':>6} {'ms/call':>8}  action")
    for action, (total, calls) in sorted(totals.items(), key=lambda kv: -kv[1][0]):
        if 1000 * total >= args.min_ms:
            print(f"{total:8.3f} {calls:6d} {1000 * total / calls:8.2f}  {action}")


if __name__ == "__main__":
    main()
