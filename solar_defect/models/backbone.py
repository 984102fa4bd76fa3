"""Backbone factory: any torchvision classification model, one gray input channel, our classes.

Pretrained weights come from torchvision's weights API (read from the torch hub cache, never
downloaded at run time) or from a local file. Nothing falls back silently to random weights.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn

from solar_defect.errors import UserInputError

# ImageNet RGB statistics averaged over channels: a gray image fed to RGB-summed first-layer
# weights then sees the input distribution those weights were trained on.
GRAY_MEAN = 0.449
GRAY_STD = 0.226


class GrayClassifier(nn.Module):
    """uint8 (B, 1, H, W) in, logits out; normalisation lives here so exports include it."""

    def __init__(self, backbone: nn.Module, mean: float = GRAY_MEAN, std: float = GRAY_STD):
        super().__init__()
        self.backbone = backbone
        self.register_buffer("scale", torch.tensor(1.0 / (255.0 * std)), persistent=False)
        self.register_buffer("shift", torch.tensor(mean / std), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() * self.scale - self.shift  # (B, 1, H, W), normalised
        return self.backbone(x)


def build_backbone(name: str, num_classes: int, weights: str | None = None) -> nn.Module:
    """A torchvision model with a 1-channel stem and a `num_classes` head.

    Args:
        name: any name in `torchvision.models.list_models(module=torchvision.models)`.
        num_classes: outputs of the new head.
        weights: None (random init), a torchvision weights name such as `DEFAULT` or
            `IMAGENET1K_V2` (taken from the hub cache), or a path to a local state dict or
            Lightning checkpoint of the same architecture.
    """
    known = torchvision.models.list_models(module=torchvision.models)
    if name not in known:
        raise UserInputError(
            f"model.name {name!r} is not a torchvision classification model: try resnet18, "
            "resnet50, efficientnet_b0, convnext_tiny (see torchvision.models.list_models())"
        )
    model = torchvision.models.get_model(name, weights=None)
    if weights:
        model.load_state_dict(_pretrained_state(name, weights))
    _to_gray_stem(model)
    _new_head(model, num_classes)
    return model


def _pretrained_state(name: str, weights: str) -> dict[str, torch.Tensor]:
    if Path(weights).suffix in {".pth", ".pt", ".ckpt", ".bin"} or "/" in weights:
        path = Path(weights)
        if not path.is_file():
            raise UserInputError(f"model.weights file {path} not found: check the path")
        state = torch.load(path, map_location="cpu", weights_only=True)
        return state.get("state_dict", state)
    try:
        enum = torchvision.models.get_model_weights(name)[weights]
    except KeyError as err:
        options = list(torchvision.models.get_model_weights(name).__members__)
        raise UserInputError(
            f"model.weights {weights!r} unknown for {name}: use one of {options} or a file path"
        ) from err
    file = Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.url).name
    if not file.is_file():
        raise UserInputError(
            f"pretrained weights {name}.{enum.name} are not in the torch hub cache: put "
            f"{Path(enum.url).name} at {file} (or pass model.weights=/path/to/file.pth)"
        )
    return torch.load(file, map_location="cpu", weights_only=True)


def _to_gray_stem(model: nn.Module) -> None:
    """Replace the first 3-channel conv by a 1-channel one; RGB weights are summed."""
    for parent in model.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.Conv2d) and child.in_channels == 3:
                gray = nn.Conv2d(
                    1,
                    child.out_channels,
                    child.kernel_size,
                    child.stride,
                    child.padding,
                    child.dilation,
                    child.groups,
                    child.bias is not None,
                    child.padding_mode,
                )
                with torch.no_grad():
                    gray.weight.copy_(child.weight.sum(dim=1, keepdim=True))
                    if child.bias is not None:
                        gray.bias.copy_(child.bias)
                setattr(parent, child_name, gray)
                return
    raise UserInputError(f"{type(model).__name__} has no 3-channel input conv to adapt to gray")


def _new_head(model: nn.Module, num_classes: int) -> None:
    """Replace the last Linear layer (torchvision's classifier head) by a fresh one."""
    last = None
    for parent in model.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.Linear):
                last = (parent, child_name, child)
    if last is None:
        raise UserInputError(f"{type(model).__name__} has no Linear head to replace")
    parent, child_name, child = last
    setattr(parent, child_name, nn.Linear(child.in_features, num_classes))
