"""`solar-train`: fit, validate the best checkpoint, test if there is a test split, report."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint

from solar_defect.cli import EXIT_INTERRUPTED, hydra_main
from solar_defect.errors import UserInputError
from solar_defect.models.classifier import DefectClassifier
from solar_defect.resume import InterruptCheckpoint, RngState
from solar_defect.runs import (
    as_floats,
    check_writable,
    instantiate_all,
    last_checkpoint_path,
    load_checkpoint,
    print_summary,
    read_report,
    resolve_ckpt_path,
    write_json,
)

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run one training job from a composed config; returns what `metrics.json` holds.

    Every input is checked (data, model, callbacks, trainer, checkpoint) before anything is
    written to the run directory, so a bad command leaves an earlier run there as it was.
    """
    output_dir = Path(cfg.paths.output_dir)
    check_writable(output_dir)
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), output_dir)
    _set_threads(cfg.get("num_threads"))
    pl.seed_everything(cfg.seed, workers=True, verbose=False)

    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    model = instantiate(
        cfg.model,
        class_names=datamodule.class_names,
        class_weights=datamodule.loss_weights(),
        _convert_="all",
    )
    if ckpt_path:
        check_resumable(ckpt_path, model)
    interrupt = InterruptCheckpoint(last_checkpoint_path(output_dir))
    callbacks = [*instantiate_all(cfg.get("callbacks")), RngState(), interrupt]
    trainer: pl.Trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=instantiate_all(cfg.get("logger")) or False
    )
    results: dict[str, Any] = {
        "val": {},
        "test": {},
        "best_checkpoint": "",
        "train_counts": datamodule.counts("train"),
        "val_counts": datamodule.counts("val"),
        "overrides": _overrides(),
    }
    if trainer.is_global_zero:
        _write_skipped(output_dir, datamodule.skipped_paths)
        if datamodule.guided_recipe_yaml:
            output_dir.mkdir(parents=True, exist_ok=True)
            (output_dir / "guided_recipe.yaml").write_text(datamodule.guided_recipe_yaml)
    log.info("Training on %s, validating on %s", results["train_counts"], results["val_counts"])

    with _end_cleanly_on_interrupt(trainer, interrupt, output_dir, results):
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
        best = _best_checkpoint(trainer)
        val = trainer.validate(model, datamodule=datamodule, ckpt_path=best or None, verbose=False)
        test = []
        if cfg.get("test") and "test" in datamodule.datasets:
            test = trainer.test(model, datamodule=datamodule, ckpt_path=best or None, verbose=False)
    results.update(
        val=as_floats(val[0]) if val else {},
        test=as_floats(test[0]) if test else {},
        best_checkpoint=best,
    )
    if trainer.is_global_zero:
        write_json(output_dir / "metrics.json", results)
        print_summary(
            "solar-train: validation of the best checkpoint",
            results["val"],
            datamodule.class_names,
            "val",
            {
                "best checkpoint": best or "(none saved)",
                "metrics": str(output_dir / "metrics.json"),
                "TensorBoard": f"tensorboard --logdir {output_dir}",
            },
            read_report(output_dir / "sensitivity" / "validate.json"),
        )
    return results


def _set_threads(num_threads: Any) -> None:
    """Apply `num_threads` (null keeps torch's default) before any tensor work starts."""
    if num_threads is None:
        return
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
        raise UserInputError(
            f"num_threads={num_threads!r} is not a positive integer: use e.g. num_threads=1, "
            "or null for torch's default"
        )
    torch.set_num_threads(num_threads)


def check_resumable(ckpt_path: str, model: DefectClassifier) -> None:
    """A checkpoint to resume from holds this model (backbone, classes) and its training state."""
    checkpoint = load_checkpoint(Path(ckpt_path))
    saved = checkpoint.get("hyper_parameters") or {}
    for key in ("name", "class_names"):
        if key in saved and saved[key] != model.hparams[key]:
            raise UserInputError(
                f"ckpt_path {ckpt_path} holds a model with {key}={saved[key]!r}, this run has "
                f"{model.hparams[key]!r}: resume with the overrides the run was trained with"
            )
    if "optimizer_states" not in checkpoint:
        raise UserInputError(
            f"ckpt_path {ckpt_path} holds weights only (the best epoch's file), not the training "
            "state: resume from last.ckpt (ckpt_path=last); solar-eval reads the best file"
        )


@contextmanager
def _end_cleanly_on_interrupt(
    trainer: pl.Trainer,
    interrupt: InterruptCheckpoint,
    output_dir: Path,
    results: dict[str, Any],
) -> Iterator[None]:
    """After Ctrl-C (Lightning stops with exit 1): partial metrics.json, then exit 130.

    `val` holds the metrics of the last validation epoch, not of the best checkpoint.
    """
    try:
        yield
    except SystemExit:
        if not trainer.interrupted:
            raise
        if trainer.is_global_zero:
            results.update(
                interrupted=True,
                val=as_floats(
                    {k: v for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
                ),
                best_checkpoint=_best_checkpoint(trainer),
                last_checkpoint=interrupt.saved or "",
            )
            write_json(output_dir / "metrics.json", results)
            log.warning(
                "Interrupted: partial metrics in %s; go on with ckpt_path=last hydra.run.dir=%s",
                output_dir / "metrics.json",
                output_dir,
            )
        raise SystemExit(EXIT_INTERRUPTED) from None


def _best_checkpoint(trainer: pl.Trainer) -> str:
    """The monitored ModelCheckpoint's best file ("" when nothing monitors a metric)."""
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.monitor and callback.best_model_path:
            return callback.best_model_path
    return ""


def _overrides() -> list[str]:
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def _write_skipped(output_dir: Path, skipped: list[str]) -> None:
    """The files `data.on_bad_image=skip` left out, one relative path a line (none: no file)."""
    path = output_dir / "skipped_images.txt"
    if skipped:
        path.write_text("\n".join(skipped) + "\n", encoding="utf-8")
    else:
        path.unlink(missing_ok=True)  # an earlier run's list in this directory no longer holds


@hydra_main("solar-train", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Console entry point; returns the optimised metric for sweepers."""
    OmegaConf.resolve(cfg)
    results = train(cfg)
    metric = cfg.get("optimized_metric")
    return results["val"].get(metric) if metric else None


if __name__ == "__main__":
    main()
