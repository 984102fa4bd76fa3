"""Backbone factory, pretrained-weight loading and the LightningModule's steps and metrics."""

from functools import partial
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from solar_defect.errors import UserInputError
from solar_defect.models import DefectClassifier
from solar_defect.models.backbone import build_backbone

CLASSES = ["functional", "defective"]


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small"])
def test_backbone_takes_gray_and_has_our_head(name):
    model = build_backbone(name, num_classes=3).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 1, 64, 64))
    assert out.shape == (2, 3)


def test_local_weights_file_is_loaded(tmp_path: Path):
    import torchvision

    reference = torchvision.models.resnet18()
    torch.nn.init.constant_(reference.layer1[0].conv1.weight, 0.125)
    path = tmp_path / "stand_in_resnet18.pth"
    torch.save(reference.state_dict(), path)
    model = build_backbone("resnet18", 2, weights=str(path))
    assert torch.all(model.layer1[0].conv1.weight == 0.125)
    # the gray stem sums the RGB filters
    expected = reference.conv1.weight.sum(dim=1, keepdim=True)
    assert torch.allclose(model.conv1.weight, expected)


def test_hub_weights_missing_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(UserInputError, match=r"put resnet50-.*\.pth at .*checkpoints"):
        build_backbone("resnet50", 2, weights="DEFAULT")


def test_hub_weights_from_cache_are_used(tmp_path, monkeypatch):
    import torchvision

    enum = torchvision.models.ResNet18_Weights.DEFAULT
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    stand_in = torchvision.models.resnet18()
    torch.nn.init.constant_(stand_in.fc.weight, 0.5)
    torch.nn.init.constant_(stand_in.layer4[1].conv2.weight, 0.25)
    torch.save(stand_in.state_dict(), folder / Path(enum.url).name)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    model = build_backbone("resnet18", 2, weights="DEFAULT")
    assert torch.all(model.layer4[1].conv2.weight == 0.25)


def test_unknown_model_and_weights_names():
    with pytest.raises(UserInputError, match="'resnet51' is not a torchvision"):
        build_backbone("resnet51", 2)
    with pytest.raises(UserInputError, match="unknown for resnet18"):
        build_backbone("resnet18", 2, weights="IMAGENET9K")
    with pytest.raises(UserInputError, match="not found"):
        build_backbone("resnet18", 2, weights="/no/such/file.pth")


def make_module(**kwargs) -> DefectClassifier:
    optimizer = partial(torch.optim.AdamW, lr=1e-3)
    return DefectClassifier(CLASSES, optimizer, name="resnet18", **kwargs)


def test_negative_learning_rate_is_rejected():
    with pytest.raises(UserInputError, match="lr must be > 0"):
        DefectClassifier(CLASSES, partial(torch.optim.SGD, lr=-0.1), name="resnet18")


def test_forward_takes_uint8_and_normalises_inside():
    module = make_module().eval()
    images = torch.randint(0, 256, (4, 1, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        assert module(images).shape == (4, 2)
        # the normalisation is part of the network, so exports carry it
        assert torch.allclose(module.net(images), module(images))


def test_epoch_metrics_have_the_design_names():
    module = make_module(class_weights=[1.0, 2.0])
    batch = (
        torch.randint(0, 256, (6, 1, 32, 32), dtype=torch.uint8),
        torch.tensor([0, 0, 0, 1, 1, 1]),
        torch.arange(6),
    )
    module.metrics["val_metrics"].update(torch.softmax(module(batch[0]), 1), batch[1])
    names = set(module.metrics["val_metrics"].compute())
    assert names == {
        "val/acc",
        "val/f1_macro",
        "val/auroc",
        *(f"val/{m}/{c}" for m in ("recall", "precision", "f1") for c in CLASSES),
    }
    out = module.training_step(batch, 0)
    assert out["loss"].requires_grad
    assert out["probs"].shape == (6, 2)
    assert torch.equal(module.criterion.weight, torch.tensor([1.0, 2.0]))


def test_one_cycle_with_a_one_step_warm_up_gets_a_two_step_one(monkeypatch):
    """pct_start 0.2 of 5 steps is a 1-step warm-up, where torch's OneCycleLR divides by zero."""
    scheduler = partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=0.1, pct_start=0.2)
    module = make_module(scheduler=scheduler)
    monkeypatch.setattr(DefectClassifier, "trainer", SimpleNamespace(estimated_stepping_batches=5))

    config = module.configure_optimizers()

    optimizer, one_cycle = config["optimizer"], config["lr_scheduler"]["scheduler"]
    rates = [optimizer.param_groups[0]["lr"]]
    for _ in range(4):
        optimizer.step()
        one_cycle.step()
        rates.append(optimizer.param_groups[0]["lr"])
    assert rates.index(max(rates)) == 1  # warm-up over steps 0 -> 1 instead of a division by 0
    assert max(rates) == pytest.approx(0.1)
    assert rates[-1] < rates[0]
