"""`cnn`: the default. A compact ConvNet built only from ops that export to ONNX and quantize to
int8 well (Conv+BN folds, ReLU, MaxPool, global average pool, one Linear); other activations are a
model argument (`-a activation=gelu`)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from dlcli.models.activations import DEFAULT_ACTIVATION, make_activation
from dlcli.models.registry import MAX_WIDTH, MODELS, ModelSpec
from dlcli.validation import Range


def conv_bn_act(cin: int, cout: int, activation: str = DEFAULT_ACTIVATION) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), make_activation(activation)]


def cnn(
    input_shape: Sequence[int],
    num_classes: int,
    channels: Sequence[int] = (8, 16, 32, 64),
    width: float = 1.0,
    pool_stages: int = 3,
    dropout: float = 0.0,
    activation: str = DEFAULT_ACTIVATION,
) -> nn.Module:
    """ConvNet: one conv-BN-activation block per entry of `channels` (scaled by `width`), a 2x2 max-pool
    after each of the first `pool_stages` blocks, then global average pooling and a linear head.

    Global pooling makes the head independent of the input size, so 28x28 and 32x32 both work.
    """
    c_in = int(input_shape[0])
    layers: list[nn.Module] = []
    for i, c in enumerate(channels):
        c_out = max(1, round(c * width))
        layers += conv_bn_act(c_in, c_out, activation)
        if i < pool_stages and min(input_shape[1:]) >> (i + 1) >= 2:
            layers.append(nn.MaxPool2d(2))
        c_in = c_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(c_in, num_classes))
    return nn.Sequential(*layers)


MODELS.add("cnn", ModelSpec(
    cnn, "compact ConvNet (conv-BN-ReLU, max-pool, global pool); the default",
    ranges={"channels": Range(ge=1, le=MAX_WIDTH, min_items=1), "width": Range(gt=0, le=64),
            "pool_stages": Range(ge=0, le=16), "dropout": Range(ge=0, lt=1)},
))
