"""`resnet`: the CIFAR-style ResNet of He et al. (2016), depth 6n+2 (8, 14, 20, 32 ...), for 28x28
and 32x32 inputs. Three stages of basic blocks at 16/32/64 channels (times `width`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dlcli.errors import UsageError
from dlcli.models.activations import DEFAULT_ACTIVATION, make_activation
from dlcli.models.registry import MAX_DEPTH, MAX_WIDTH, MODELS, ModelSpec
from dlcli.validation import Range


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int, activation: str = DEFAULT_ACTIVATION) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act = make_activation(activation)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act(out + self.shortcut(x))


def resnet(
    input_shape: Sequence[int],
    num_classes: int,
    depth: int = 20,
    width: float = 1.0,
    stage_channels: Sequence[int] = (16, 32, 64),
    activation: str = DEFAULT_ACTIVATION,
) -> nn.Module:
    """ResNet-`depth` (depth = 6n + 2); `width` scales every stage's channels."""
    if depth < 8 or (depth - 2) % 6:
        raise UsageError(f"resnet depth must be 6n+2 and at least 8 (8, 14, 20, 32 ...), got {depth}.")
    blocks_per_stage = (depth - 2) // 6
    chans = [max(1, round(c * width)) for c in stage_channels]
    layers: list[nn.Module] = [
        nn.Conv2d(int(input_shape[0]), chans[0], 3, padding=1, bias=False),
        nn.BatchNorm2d(chans[0]),
        make_activation(activation),
    ]
    cin = chans[0]
    for stage, cout in enumerate(chans):
        for b in range(blocks_per_stage):
            stride = 2 if stage > 0 and b == 0 else 1
            layers.append(BasicBlock(cin, cout, stride, activation))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes)]
    return nn.Sequential(*layers)


MODELS.add("resnet", ModelSpec(
    resnet, "CIFAR-style ResNet (depth 6n+2, default ResNet-20)",
    ranges={"depth": Range(ge=8, le=MAX_DEPTH), "width": Range(gt=0, le=64),
            "stage_channels": Range(ge=1, le=MAX_WIDTH, min_items=1)},
))
