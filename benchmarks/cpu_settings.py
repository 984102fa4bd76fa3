"""CPU settings of the quickstart preset, each in training images/s, measured side by side.

Every variant is `solar-train experiment=quickstart` (ResNet18, 128 px, batch 32, online
targeted augmentation, ELPV seed protocol) composed from conf/ with one change, trained under
the Lightning Trainer through `ELDataModule` for `--warmup` + `--steps` batches with validation,
callbacks and logging off. Steady img/s counts only the batches after the warm-up; the warm-up's
extra seconds (over steady steps) are the start-up cost, which for `model.compile=true` is the
compile time. Each variant runs right after a base run (base, a, base, b, ...), repeated;
medians are reported, and the ratio is the median of each variant over the base run next to it,
as the shared machine's load moves between minutes, not within a pair.

Thread count has no config key: it is set here with `torch.set_num_threads` before each run.

    python benchmarks/cpu_settings.py [--repeats 3] [--steps 8] [--variants base bf16 ...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import time

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from solar_defect.cli import CONFIG_DIR

# variant -> (config overrides, torch threads)
VARIANTS: dict[str, tuple[list[str], int]] = {
    "base": ([], 2),
    "channels_last": (["model.channels_last=true"], 2),
    "bf16": (["trainer.precision=bf16-mixed"], 2),
    "compile": (["model.compile=true"], 2),
    "threads1": ([], 1),
    "workers1": (["data.num_workers=1"], 2),
    "workers2": (["data.num_workers=2"], 2),
    "cl+bf16": (["model.channels_last=true", "trainer.precision=bf16-mixed"], 2),
}


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


class BatchClock(pl.Callback):
    """perf_counter at fit start and after every training batch."""

    def __init__(self) -> None:
        self.start = 0.0
        self.ends: list[float] = []

    def on_train_start(self, trainer, pl_module) -> None:
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.ends.append(time.perf_counter())


def measure(overrides: list[str], threads: int, args: argparse.Namespace) -> tuple[float, float]:
    """(steady img/s, start-up seconds beyond steady steps) of one short quickstart fit."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["experiment=quickstart", *overrides])
    torch.set_num_threads(threads)
    pl.seed_everything(0, verbose=False)
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup("fit")
    model = instantiate(cfg.model, class_names=dm.class_names, _convert_="all")
    clock = BatchClock()
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        precision=cfg.trainer.precision,
        max_epochs=1,
        limit_train_batches=args.warmup + args.steps,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        callbacks=[clock],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=dm)
    ends = clock.ends
    step = (ends[-1] - ends[args.warmup - 1]) / args.steps
    startup = ends[args.warmup - 1] - clock.start - args.warmup * step
    return cfg.data.batch_size / step, startup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2, help="batches before timing starts")
    parser.add_argument("--steps", type=int, default=8, help="timed batches")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    args = parser.parse_args()
    default_threads = torch.get_num_threads()
    print(f"{dt.datetime.now():%Y-%m-%d %H:%M}  torch {torch.__version__}, pl {pl.__version__}")
    print(
        f"quickstart (resnet18, 128 px, batch 32); {args.warmup} warm-up + {args.steps} timed "
        f"batches; {args.repeats} interleaved repeats; {load()}"
    )
    # Each variant runs right after its own base run, so the pair shares the machine's load;
    # the ratio column is the median over repeats of variant / its base.
    base_name, others = args.variants[0], args.variants[1:]
    results: dict[str, list[tuple[float, float]]] = {v: [] for v in args.variants}
    ratios: dict[str, list[float]] = {v: [] for v in others}
    for rep in range(args.repeats):
        for variant in others:
            for name in (base_name, variant):
                overrides, threads = VARIANTS[name]
                rate, startup = measure(overrides, threads, args)
                results[name].append((rate, startup))
                print(
                    f"  repeat {rep} {name:>14}: {rate:6.1f} img/s, start-up {startup:6.1f} s"
                    f"  ({os.getloadavg()[0]:.2f})",
                    flush=True,
                )
            ratios[variant].append(results[variant][-1][0] / results[base_name][-1][0])
    torch.set_num_threads(default_threads)
    print(f"\nmedians of {args.repeats}; ratio: median of variant / the {base_name} run before it")
    print(
        f"{'variant':>14} {'img/s':>7} {'ratio':>6} {'min-max':>11} {'start-up s':>11}  overrides"
    )
    for variant, values in results.items():
        rate = statistics.median(r[0] for r in values)
        startup = statistics.median(r[1] for r in values)
        pair = ratios.get(variant, [1.0])
        overrides, threads = VARIANTS[variant]
        what = " ".join(overrides) + (f" torch.set_num_threads({threads})" if threads != 2 else "")
        print(
            f"{variant:>14} {rate:7.1f} {statistics.median(pair):6.2f} "
            f"{min(pair):5.2f}-{max(pair):<5.2f} {startup:11.1f}  {what}"
        )
    print(f"\n{load()}")


if __name__ == "__main__":
    main()
