"""Peak memory of real `solar-train` runs, and the bytes the datasets themselves hold.

Each run is a subprocess. Two figures per run:
* peak RSS from `os.wait4` (Linux `ru_maxrss`): the largest single process of the run's tree,
  data loader workers included (the kernel folds reaped children's peaks into their parent's);
* peak tree RSS: the sum of RSS over the process and all its descendants, sampled every 50 ms
  with psutil (shared pages count once per process, so this over-states forked workers).

The dataset part builds each preset's `ELDataModule` and prints the decode cache's bytes against
the per-sample index arrays, and checks that every split indexes the one cache array: expansion
stores (source index, slot) pairs, never pixels.

    python benchmarks/memory.py [--skip-cold] [--runs quickstart seed_targeted]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from solar_defect.cli import CONFIG_DIR

SOLAR_TRAIN = str(Path(sys.executable).parent / "solar-train")
RUNS: dict[str, list[str]] = {
    # 6, not 5, batches: with 5, OneCycleLR (pct_start 0.2) divides by zero in its first step
    "quickstart": [
        "experiment=quickstart",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=6",
    ],
    "seed_targeted": [
        "experiment=seed_targeted",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=2",
    ],
}
GIB = 2**30
MIB = 2**20


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def tree_rss(process: psutil.Process) -> int:
    total = 0
    for p in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):  # a worker may exit between the calls
            total += p.memory_info().rss
    return total


def run(args: list[str], log: Path) -> tuple[int, int, float, int]:
    """(wait4 peak RSS bytes, sampled peak tree RSS bytes, seconds, exit code)."""
    start = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    process, peak_tree = psutil.Process(proc.pid), 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        with contextlib.suppress(psutil.NoSuchProcess):
            peak_tree = max(peak_tree, tree_rss(process))
        time.sleep(0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here; keep Popen in step
    seconds = time.perf_counter() - start
    return usage.ru_maxrss * 1024, peak_tree, seconds, proc.returncode


def dataset_bytes(preset: str) -> None:
    """Cache array vs index arrays of each split, and that no split copied the pixels."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={preset}"])
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup("fit")
    cache = dm.decoded.images
    print(
        f"  {preset}: decode cache {cache.shape} {cache.dtype}: {cache.nbytes / MIB:.1f} MiB "
        f"(recipe {dm.recipe.name}, {dm.recipe.mode})"
    )
    for split, ds in dm.datasets.items():
        index = ds.labels.nbytes + ds.source_index.nbytes + ds.slots.nbytes
        copied = len(ds) * cache[0].nbytes
        shares = ds.images is cache and np.shares_memory(ds.images, cache)
        print(
            f"    {split:>5}: {len(ds):5d} samples, index arrays {index / 1024:7.1f} KiB; "
            f"pixels would be {copied / MIB:6.1f} MiB if copied; shares the cache array: {shares}"
        )
        if not shares:
            raise SystemExit(f"{split} dataset holds its own pixel array")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-cold", action="store_true", help="no run with a fresh cache")
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=RUNS)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_memory_"))
    print(f"{dt.datetime.now():%Y-%m-%d %H:%M}  {load()}")
    print(f"memory: {psutil.virtual_memory().total / GIB:.1f} GiB; cwd {Path.cwd()}")
    jobs = [(name, RUNS[name], None) for name in args.runs]
    if not args.skip_cold and "quickstart" in args.runs:
        jobs.insert(1, ("quickstart", RUNS["quickstart"], tmp / "fresh_cache"))
    print(f"\n{'run':>14} {'cache':>6} {'peak RSS':>9} {'tree RSS':>9} {'seconds':>8}  rc")
    for name, overrides, cache_dir in jobs:
        extra = [f"paths.cache_dir={cache_dir}"] if cache_dir else []
        run_dir = tmp / f"{name}_{'cold' if cache_dir else 'warm'}"
        command = [SOLAR_TRAIN, *overrides, *extra, f"hydra.run.dir={run_dir}"]
        peak, tree, seconds, rc = run(command, tmp / f"{run_dir.name}.log")
        print(
            f"{name:>14} {'fresh' if cache_dir else 'hit':>6} {peak / GIB:7.2f} G "
            f"{tree / GIB:7.2f} G {seconds:8.1f}  {rc}",
            flush=True,
        )
        if rc:
            print((tmp / f"{run_dir.name}.log").read_text()[-3000:])
        shutil.rmtree(run_dir, ignore_errors=True)
        print(f"{'':>14} $ solar-train {' '.join(overrides + extra)}")
    print("\ndataset bytes (in this process, cache hit):")
    for preset in args.runs:
        dataset_bytes(preset)
    print(f"\n{load()}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
