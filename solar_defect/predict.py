"""`solar-predict`: class probabilities of new cells from a checkpoint, written as a CSV.

Inference reuses the validation path end to end: files are decoded by the decode cache's
`build` (gray, resized with `cv2.INTER_AREA` to the size the model was trained at), served as
uint8 batches by the same `CellDataset`, and normalised inside the model. A prediction here is
therefore the prediction the validation loop makes for the same file.
"""

from __future__ import annotations

import csv
import glob
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from solar_defect.cli import hydra_main
from solar_defect.data import cache
from solar_defect.data.dataset import CellDataset, collate_batch
from solar_defect.data.sources import IMAGE_SUFFIXES
from solar_defect.errors import UserInputError
from solar_defect.models.classifier import CHECKPOINT_META, DefectClassifier
from solar_defect.runs import instantiate_all, load_checkpoint

log = logging.getLogger(__name__)

GLOB_CHARS = frozenset("*?[")
SKIPPED_FILE = "skipped_images.txt"


@dataclass(frozen=True)
class ModelInfo:
    """What inference needs to know about a checkpoint besides its weights.

    Attributes:
        ckpt_path: the checkpoint file.
        class_names: the classes, in the order of the model's outputs.
        image_size: the side (pixels) the model was trained at.
    """

    ckpt_path: Path
    class_names: list[str]
    image_size: int


@dataclass(frozen=True)
class InputCells:
    """The images to predict, as the output CSV names them.

    Attributes:
        paths: the files to read.
        names: each file as the output shows it (relative to the input folder, as matched by
            the glob, or as written in the CSV).
        labels: the labels the input carries (class sub-folders or a CSV `label` column).
    """

    paths: list[Path]
    names: list[str]
    labels: list[str] | None


def read_model_info(ckpt_path: Any, image_size: int | None = None) -> ModelInfo:
    """Read and check a checkpoint's classes and training image size.

    The size comes from the checkpoint (written by `DefectClassifier.on_save_checkpoint`), else
    from the training run's `.hydra/config.yaml` next to `checkpoints/` (older checkpoints). An
    explicit `image_size` wins, with a warning when it differs from training's.
    """
    if not ckpt_path:
        raise UserInputError(
            "ckpt_path is required: give the .ckpt file of a training run "
            "(ckpt_path=RUN/checkpoints/FILE.ckpt)"
        )
    path = Path(str(ckpt_path))
    checkpoint = load_checkpoint(path)
    hparams = checkpoint.get("hyper_parameters")
    class_names = (hparams or {}).get("class_names")
    if class_names is None:
        raise UserInputError(
            f"ckpt_path {path} is not a solar_defect checkpoint (no class_names in its "
            "hyper-parameters): give a checkpoint written by solar-train"
        )
    trained, where = _trained_image_size(checkpoint, path)
    if image_size is None and trained is None:
        raise UserInputError(
            f"{path} does not record its image size and has no training run config next to "
            "it: pass data.image_size=S as used in training"
        )
    if image_size is not None and trained is not None and int(image_size) != trained:
        log.warning(
            "data.image_size=%d but the model was trained at %d px (%s): predictions at a "
            "size it never saw are less reliable",
            image_size,
            trained,
            where,
        )
    size = image_size if image_size is not None else trained
    return ModelInfo(path, list(class_names), int(size))


def _trained_image_size(checkpoint: Mapping[str, Any], path: Path) -> tuple[int | None, str]:
    size = (checkpoint.get(CHECKPOINT_META) or {}).get("image_size")
    if size is not None:
        return int(size), "stored in the checkpoint"
    config = path.resolve().parent.parent / ".hydra" / "config.yaml"
    if config.is_file():
        size = OmegaConf.select(OmegaConf.load(config), "data.image_size", default=None)
        if size is not None:
            return int(size), f"from {config}"
    return None, ""


def load_model(info: ModelInfo) -> DefectClassifier:
    """The trained classifier in eval mode, on the CPU (the Trainer moves it)."""
    # weights=None: the trained weights are in the checkpoint, pretrained files are not needed
    model = DefectClassifier.load_from_checkpoint(info.ckpt_path, map_location="cpu", weights=None)
    return model.eval()


def read_input(spec: str, class_names: list[str]) -> InputCells:
    """A folder (searched recursively), a glob, a CSV (`path[,label]`) or a single image.

    A folder laid out as for training (every image under a sub-folder named after one of the
    model's classes) carries those labels.
    """
    text = str(spec)
    path = Path(text)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if _is_image(p))
        if not files:
            raise UserInputError(
                f"no images found under {path} (looked for {', '.join(IMAGE_SUFFIXES)})"
            )
        names = [p.relative_to(path).as_posix() for p in files]
        heads = [Path(name).parts[0] for name in names]
        nested = all(len(Path(name).parts) > 1 for name in names)
        labels = heads if nested and set(heads) <= set(class_names) else None
        return InputCells(files, names, labels)
    if path.suffix.lower() == ".csv" and path.is_file():
        return _read_csv(path)
    if GLOB_CHARS & set(text):
        matches = [m for m in sorted(glob.glob(text, recursive=True)) if _is_image(Path(m))]
        if not matches:
            raise UserInputError(f"no image files match input={text}: check the pattern")
        return InputCells([Path(m) for m in matches], matches, None)
    if path.is_file() and _is_image(path):
        return InputCells([path], [text], None)
    raise UserInputError(
        f"input {text} not found: give a folder of images, a glob such as 'cells/*.png' "
        "(quoted) or a CSV with a path column"
    )


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def _read_csv(csv_path: Path) -> InputCells:
    """Columns `path[,label,...]`; relative paths are resolved against the CSV's folder."""
    with csv_path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        if "path" not in columns:
            raise UserInputError(
                f"{csv_path}: no `path` column (has {columns}): the CSV needs a header "
                "`path[,label]`"
            )
        rows = list(reader)
    if not rows:
        raise UserInputError(f"{csv_path} has no rows: add one image path per line")
    names = [row["path"].strip() for row in rows]
    paths = [csv_path.parent / name for name in names]
    labels = [(row.get("label") or "").strip() for row in rows] if "label" in columns else None
    return InputCells(paths, names, labels)


def decode(paths: list[Path], image_size: int, on_bad_image: str) -> tuple[np.ndarray, list[int]]:
    """Decoded (N, S, S) uint8 pixels as validation sees them, and the rows that were unreadable.

    Under `skip` the unreadable rows hold zeros; the caller leaves them out.
    """
    decoded = cache.build(paths, image_size, on_bad_image)
    return decoded.images, decoded.bad


def predict_probs(
    model: DefectClassifier,
    images: np.ndarray,
    class_names: list[str],
    trainer: pl.Trainer,
    batch_size: int,
) -> np.ndarray:
    """(N, C) class probabilities of (N, S, S) uint8 images, through Lightning's predict loop."""
    rows = np.arange(len(images))
    dataset = CellDataset(images, np.zeros(len(images), np.int64), rows, class_names)
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate_batch)
    batches = trainer.predict(model, dataloaders=loader)
    return torch.cat(batches).float().cpu().numpy()


def decide(probs: np.ndarray, threshold: float | None) -> np.ndarray:
    """Class indices: argmax, or for two classes `P(class 1) >= threshold`."""
    if threshold is None:
        return probs.argmax(axis=1)
    return (probs[:, 1] >= threshold).astype(np.int64)


def check_threshold(threshold: float | None, class_names: list[str]) -> float | None:
    if threshold is None:
        return None
    if len(class_names) != 2:
        raise UserInputError(
            f"threshold applies to two-class models; this one has {class_names}: "
            "leave threshold=null (argmax)"
        )
    if not 0.0 <= float(threshold) <= 1.0:
        raise UserInputError(f"threshold must be in [0, 1] (on P({class_names[1]})): {threshold}")
    return float(threshold)


def check_output(output: Path) -> None:
    """Fail before any work when the output CSV cannot be written."""
    if output.is_dir():
        raise UserInputError(f"output {output} is a folder: give a file such as {output}/x.csv")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        probe = output.parent / f".write_test{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise UserInputError(
            f"cannot write output {output} ({err.strerror}): choose another output=FILE.csv"
        ) from err


def write_predictions_csv(
    path: Path,
    names: list[str],
    probs: np.ndarray,
    preds: np.ndarray,
    class_names: list[str],
    labels: list[str] | None,
) -> None:
    """`path[,label],pred,prob_{class}...`; probabilities in full (repr) precision."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        label_column = ["label"] if labels is not None else []
        writer.writerow(["path", *label_column, "pred", *[f"prob_{c}" for c in class_names]])
        for i, name in enumerate(names):
            label = [labels[i]] if labels is not None else []
            probabilities = [repr(float(p)) for p in probs[i]]
            writer.writerow([name, *label, class_names[int(preds[i])], *probabilities])
    tmp.replace(path)  # a killed run leaves no half-written CSV


def predict(cfg: DictConfig) -> dict[str, Any]:
    """Predict every readable image of `cfg.input`; returns a summary of what was written."""
    output = Path(str(cfg.output))
    check_output(output)
    if int(cfg.data.batch_size) < 1:
        raise UserInputError(f"data.batch_size must be >= 1, got {cfg.data.batch_size}")
    size = cfg.data.get("image_size")
    info = read_model_info(cfg.get("ckpt_path"), int(size) if size is not None else None)
    threshold = check_threshold(cfg.get("threshold"), info.class_names)
    cells = read_input(cfg.input, info.class_names)
    log.info(
        "Predicting %d image(s) at %d px with %s", len(cells.paths), info.image_size, info.ckpt_path
    )

    images, bad = decode(cells.paths, info.image_size, cfg.data.on_bad_image)
    keep = np.setdiff1d(np.arange(len(cells.paths)), bad)
    skipped = [cells.names[i] for i in bad]
    skipped_file = output.parent / SKIPPED_FILE
    skipped_file.unlink(missing_ok=True)  # a list from an earlier run would mislead
    if skipped:
        skipped_file.write_text("\n".join(skipped) + "\n")
        log.warning(
            "Skipped %d unreadable image(s), listed in %s: %s",
            len(skipped),
            skipped_file,
            ", ".join(skipped),
        )
    if not len(keep):
        raise UserInputError(f"none of the {len(cells.paths)} images of {cfg.input} is readable")

    model = load_model(info)
    trainer: pl.Trainer = instantiate(
        cfg.trainer, callbacks=instantiate_all(cfg.get("callbacks")), logger=False
    )
    probs = predict_probs(model, images[keep], info.class_names, trainer, int(cfg.data.batch_size))
    preds = decide(probs, threshold)
    k = len(info.class_names)
    names = [cells.names[i] for i in keep]
    labels = [cells.labels[i] for i in keep] if cells.labels is not None else None
    write_predictions_csv(output, names, probs, preds, info.class_names, labels)

    summary: dict[str, Any] = {
        "output": str(output),
        "num_predicted": len(keep),
        "skipped": skipped,
        "image_size": info.image_size,
        "threshold": threshold,
        "counts": dict(
            zip(info.class_names, np.bincount(preds, minlength=k).tolist(), strict=True)
        ),
    }
    if labels is not None and set(labels) <= set(info.class_names):
        truth = np.array([info.class_names.index(label) for label in labels])
        summary["accuracy"] = float(np.mean(truth == preds))
    log.info("Wrote %d prediction(s) to %s: %s", len(keep), output, summary["counts"])
    if "accuracy" in summary:
        log.info("Accuracy on the %d labelled image(s): %.4f", len(keep), summary["accuracy"])
    return summary


@hydra_main("solar-predict", config_name="predict")
def main(cfg: DictConfig) -> None:
    """Console entry point."""
    for key in ("ckpt_path", "input"):
        if OmegaConf.is_missing(cfg, key):
            raise UserInputError(
                f"{key} is required: solar-predict ckpt_path=RUN/checkpoints/FILE.ckpt "
                "input=DIR|GLOB|CSV [output=FILE.csv]"
            )
    OmegaConf.resolve(cfg)
    predict(cfg)


if __name__ == "__main__":
    main()
