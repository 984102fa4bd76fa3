"""Ask TensorBoard itself what it serves for a tiny run and for a two-job sweep."""

import json
import urllib.request
from pathlib import Path

import pytest
from tensorboard import program

from tests.conftest import SOLAR_TRAIN, run_cli, tiny_run_overrides

SCALARS = {
    "train/loss",
    "train/acc",
    "val/loss",
    "val/acc",
    "val/acc_best",
    "val/auroc",
    "val/f1_macro",
    "val/recall/functional",
    "val/recall/defective",
    "val/precision/defective",
    "val/f1/defective",
    "lr-AdamW",
    "val/sensitivity/brightness/std/defective",
    "val/sensitivity/clarity/std/functional",
    "hp/acc",
    "hp/recall/defective",
    "hp/f1_macro",
    "hp/auroc",
}
IMAGES = {
    "train/augmentation_grid",
    "val/confusion_matrix",
    "val/sensitivity/brightness",
    "val/sensitivity/clarity",
    "val/sensitivity/contrast",
}


class TensorBoardServer:
    """A TensorBoard on a free local port, queried over its HTTP data API."""

    def __init__(self, logdir: Path) -> None:
        server = program.TensorBoard()
        server.configure(
            argv=[
                None,
                "--logdir",
                str(logdir),
                "--port",
                "0",
                "--host",
                "127.0.0.1",
                "--reload_interval",
                "0",
            ]
        )
        self.url = server.launch().rstrip("/")

    def get(self, path: str, body: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def session_groups(self) -> list[dict]:
        body = {
            "experimentName": "",
            "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_RUNNING"],
            "colParams": [],
            "startIndex": 0,
            "sliceSize": 100,
        }
        return self.get("/data/plugin/hparams/session_groups", body)["sessionGroups"]


@pytest.mark.slow
def test_tensorboard_serves_a_run_and_a_sweep(synthetic_root, tmp_path):
    common = [
        o for o in tiny_run_overrides(synthetic_root, tmp_path) if not o.startswith("hydra.run.dir")
    ]
    common = [o.replace("trainer.max_epochs=1", "trainer.max_epochs=2") for o in common]
    sweep_dir = tmp_path / "sweep"
    result = run_cli(
        [SOLAR_TRAIN, "-m", *common, "augmentation=none,flip", f"hydra.sweep.dir={sweep_dir}"],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]

    run = TensorBoardServer(sweep_dir / "0")  # a single run
    assert run.get("/data/runs") == ["tensorboard"]
    assert set(run.get("/data/plugin/scalars/tags")["tensorboard"]) >= SCALARS
    assert set(run.get("/data/plugin/images/tags")["tensorboard"]) >= IMAGES
    assert "val/sensitivity_tables/text_summary" in run.get("/data/plugin/text/tags")["tensorboard"]
    curve = run.get("/data/plugin/scalars/scalars?run=tensorboard&tag=val/recall/defective")
    assert len(curve) == 3  # two epochs and the best checkpoint's validation

    sweep = TensorBoardServer(sweep_dir)  # the sweep root: HParams compares the jobs
    groups = sweep.session_groups()
    by_recipe = {g["hparams"]["augmentation"]: g for g in groups}
    assert set(by_recipe) == {"none", "flip"}
    assert (
        by_recipe["flip"]["hparams"]["train_count/defective"]
        == 2 * by_recipe["none"]["hparams"]["train_count/defective"]
    )
    for job, recipe in enumerate(("none", "flip")):
        metrics = json.loads((sweep_dir / str(job) / "metrics.json").read_text())
        served = {m["name"]["tag"]: m["value"] for m in by_recipe[recipe]["metricValues"]}
        assert served["hp/acc"] == pytest.approx(metrics["val"]["val/acc"], abs=1e-6)
        assert served["hp/recall/defective"] == pytest.approx(
            metrics["val"]["val/recall/defective"], abs=1e-6
        )
