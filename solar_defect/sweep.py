"""Hydra callback for multiruns: a comparison table at the sweep root when the sweep ends."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from solar_defect.analysis.comparison import comparison_rows, find_runs, write_comparison
from solar_defect.errors import UserInputError

log = logging.getLogger(__name__)


class ComparisonCallback(Callback):
    """Write `comparison.md` and `comparison.csv` in `hydra.sweep.dir` when a sweep ends.

    Runs on the launching machine after all jobs returned (also with joblib or SLURM
    launchers). A sweep whose jobs wrote no `metrics.json`, or an unreadable one, only logs a
    warning: the jobs' own results are already on disk and `solar-compare` can redo the table.
    """

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            rows = comparison_rows(find_runs([sweep_dir]))
            md_path, _ = write_comparison(rows, sweep_dir)
        except (UserInputError, OSError) as err:
            log.warning("No comparison table for the sweep in %s: %s", sweep_dir, err)
            return
        log.info("Sweep comparison (%d setting(s)): %s", len(rows), md_path)
