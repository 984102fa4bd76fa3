"""Our training loader against the plain torchvision way, in images/s, measured side by side.

Ours: `ELDataModule` on ELPV (seed protocol) with the `targeted` recipe in expand mode
(conf/augmentation/targeted.yaml): decode cache, per-class cv2 augmentation on uint8, whole
batches by fancy indexing, pass-through collate. The model normalises on its device.

Plain: what a user writes without the cache: a Dataset over the same 2,940 expanded samples that
opens each PNG with PIL every time, then torchvision `transforms.v2`: resize (antialiased), the
same per-class transform (flip, gamma, Gaussian blur or unsharp mask), ToImage/ToDtype/Normalize
to float32, default collate.

Both use the same batch size, shuffle and worker count (persistent workers in both, so the
steady-state epochs exclude worker start-up). The two sides run interleaved (ours, plain, ours,
plain, ...) and medians are reported, so load from other processes hits both alike.

    python benchmarks/loader.py [--image-size 224] [--repeats 3] [--epochs 3] [--workers 0 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import torch
from omegaconf import OmegaConf
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from solar_defect.data import ELDataModule
from solar_defect.models.backbone import GRAY_MEAN, GRAY_STD

RECIPE_FILE = Path(__file__).resolve().parents[1] / "conf" / "augmentation" / "targeted.yaml"


def targeted_recipe() -> dict[str, Any]:
    """The recipe exactly as `augmentation=targeted` composes it."""
    return OmegaConf.to_container(OmegaConf.load(RECIPE_FILE), resolve=True)  # type: ignore[return-value]


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


# -- the plain way -------------------------------------------------------------------------------
def _uniform(low: float, high: float) -> float:
    return float(torch.empty(()).uniform_(low, high))


def _blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    size = 2 * math.ceil(3 * sigma) + 1  # the kernel cv2 picks for this sigma
    return F.gaussian_blur(image, [size, size], [sigma, sigma])


class RandomGamma(v2.Transform):
    """Gamma drawn uniformly from `gamma` (torchvision has no random gamma transform)."""

    def __init__(self, gamma: tuple[float, float]) -> None:
        super().__init__()
        self.gamma = gamma

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return F.adjust_gamma(inpt, _uniform(*self.gamma))


class RandomClarity(v2.Transform):
    """Gaussian blur with probability `blur_prob`, else an unsharp mask, as our `clarity`."""

    def __init__(
        self, blur_prob: float, sigma: tuple[float, float], amount: tuple[float, float]
    ) -> None:
        super().__init__()
        self.blur_prob, self.sigma, self.amount = blur_prob, sigma, amount

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        blur = float(torch.rand(())) < self.blur_prob
        blurred = _blur(inpt, _uniform(*self.sigma))
        if blur:
            return blurred
        a = _uniform(*self.amount)
        sharp = (1 + a) * inpt.float() - a * blurred.float()
        return sharp.round().clamp(0, 255).to(torch.uint8)


def plain_transforms(recipe: dict[str, Any], image_size: int) -> dict[str, Callable]:
    """One torchvision v2 pipeline per transform name of the recipe."""
    params = recipe["params"]
    augment = {
        "identity": v2.Identity(),
        "hflip": v2.RandomHorizontalFlip(p=1.0),
        "brightness": RandomGamma(tuple(params["brightness"]["gamma"])),
        "clarity": RandomClarity(
            params["clarity"]["blur_prob"],
            tuple(params["clarity"]["sigma"]),
            tuple(params["clarity"]["amount"]),
        ),
    }
    return {
        name: v2.Compose(
            [
                v2.ToImage(),
                v2.Resize((image_size, image_size), antialias=True),
                transform,
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize([GRAY_MEAN], [GRAY_STD]),
            ]
        )
        for name, transform in augment.items()
    }


class PlainDataset(Dataset):
    """Opens the PNG with PIL on every access and applies the sample's transform."""

    def __init__(
        self, paths: list[Path], labels: list[int], names: list[str], transforms: dict
    ) -> None:
        self.paths, self.labels, self.names, self.transforms = paths, labels, names, transforms

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        with Image.open(self.paths[i]) as image:
            gray = image.convert("L")
        return self.transforms[self.names[i]](gray), self.labels[i]


def plain_samples(dm: ELDataModule) -> tuple[list[Path], list[int], list[str]]:
    """The same expanded training samples as ours: (path, label, transform name) each."""
    train = dm.datasets["train"]
    paths = dm.cells.table.paths
    names = [
        dm.recipe.classes[dm.class_names[label]][slot]
        for label, slot in zip(train.labels, train.slots, strict=True)
    ]
    return [paths[i] for i in train.source_index], train.labels.tolist(), names


def plain_loader(samples: tuple, recipe: dict, image_size: int, args, workers: int) -> DataLoader:
    dataset = PlainDataset(*samples, plain_transforms(recipe, image_size))
    return DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=workers,
        persistent_workers=workers > 0,
    )


# -- ours ----------------------------------------------------------------------------------------
def our_datamodule(args, workers: int, cache_dir: str) -> ELDataModule:
    dm = ELDataModule(
        image_size=args.image_size,
        batch_size=args.batch_size,
        num_workers=workers,
        augmentation=targeted_recipe(),
        cache_dir=cache_dir,
        seed=0,
    )
    dm.prepare_data()
    dm.setup("fit")
    return dm


# -- timing --------------------------------------------------------------------------------------
def time_epochs(loader: DataLoader, epochs: int) -> list[tuple[float, float]]:
    """Per epoch: (images/s, images/s after its first batch, i.e. without worker start-up)."""
    rates = []
    for _ in range(epochs):
        start, first, seen = time.perf_counter(), 0.0, 0
        for batch in loader:
            if not seen:
                first, first_size = time.perf_counter(), len(batch[0])
            seen += len(batch[0])
        end = time.perf_counter()
        rates.append((seen / (end - start), (seen - first_size) / (end - first)))
    return rates


def first_batch_seconds(make_loader: Callable[[], DataLoader]) -> float:
    """From nothing (datamodule or dataset construction) to the first batch in hand."""
    start = time.perf_counter()
    loader = make_loader()
    next(iter(loader))
    seconds = time.perf_counter() - start
    del loader
    return seconds


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--epochs", type=int, default=3, help="per repeat; epoch 1 is reported apart"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch and cv2 threads in the main process (workers use 1 either way)",
    )
    args = parser.parse_args()
    # One thread by default: on this shared 2-core machine torch's 2-thread pool makes a tiny
    # conv2d (the plain Gaussian blur) ~50x slower under load, which would flatter our side.
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    recipe = targeted_recipe()
    tmp = Path(tempfile.mkdtemp(prefix="bench_loader_"))
    print(f"{dt.datetime.now():%Y-%m-%d %H:%M}  {platform.processor() or platform.machine()}")
    print(
        f"torch {torch.__version__}; threads: torch {torch.get_num_threads()}, "
        f"cv2 {cv2.getNumThreads()}; {load()}"
    )

    # Time to first batch: cold = fresh cache dir (decode all PNGs), warm = cache hit.
    firsts: dict[str, list[float]] = {}
    for rep in range(args.repeats):
        for workers in args.workers:
            cache_dir = str(tmp / f"cold{rep}_{workers}")
            cold = first_batch_seconds(
                lambda c=cache_dir, w=workers: our_datamodule(args, w, c).train_dataloader()
            )
            warm = first_batch_seconds(
                lambda c=cache_dir, w=workers: our_datamodule(args, w, c).train_dataloader()
            )
            samples = plain_samples(our_datamodule(args, workers, cache_dir))
            plain = first_batch_seconds(
                lambda s=samples, w=workers: plain_loader(s, recipe, args.image_size, args, w)
            )
            for key, value in (("cold", cold), ("warm", warm), ("plain", plain)):
                firsts.setdefault(f"{key}/{workers}", []).append(value)
    print(f"\ntime to first batch, s (median of {args.repeats}); {load()}")
    print(f"{'workers':>8} {'ours cold':>10} {'ours warm':>10} {'plain':>10}")
    for workers in args.workers:
        row = [median(firsts[f"{k}/{workers}"]) for k in ("cold", "warm", "plain")]
        print(f"{workers:>8} " + " ".join(f"{v:10.2f}" for v in row))

    # Throughput: fresh loaders each repeat, epoch 1 apart from the steady epochs after it.
    warm_dir = str(tmp / "cold0_0")
    samples = plain_samples(our_datamodule(args, 0, warm_dir))
    print(
        f"\nimages/s, batch {args.batch_size}, {args.image_size} px, {len(samples[0])} samples "
        f"an epoch; {args.repeats} interleaved repeats x {args.epochs} epochs, medians"
    )
    print(
        f"{'workers':>8} {'ours ep1':>9} {'ep1 -1st':>9} {'ours':>7} {'plain ep1':>10} "
        f"{'plain':>7} {'ratio':>7} {'ep1/steady':>11}  load"
    )
    for workers in args.workers:
        rates: dict[str, list[float]] = {
            k: [] for k in ("ours1", "ours1b", "ours", "plain1", "plain")
        }
        for _ in range(args.repeats):
            loader = our_datamodule(args, workers, warm_dir).train_dataloader()
            ours = time_epochs(loader, args.epochs)
            plain = time_epochs(
                plain_loader(samples, recipe, args.image_size, args, workers), args.epochs
            )
            rates["ours1"].append(ours[0][0])
            rates["ours1b"].append(ours[0][1])
            rates["ours"].extend(r[0] for r in ours[1:])
            rates["plain1"].append(plain[0][0])
            rates["plain"].extend(r[0] for r in plain[1:])
        m = {k: median(v) for k, v in rates.items()}
        print(
            f"{workers:>8} {m['ours1']:9.0f} {m['ours1b']:9.0f} {m['ours']:7.0f} "
            f"{m['plain1']:10.0f} {m['plain']:7.0f} {m['ours'] / m['plain']:6.1f}x "
            f"{m['ours1'] / m['ours']:11.2f}  {os.getloadavg()[0]:.2f}"
        )
    print(f"\n{load()}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
