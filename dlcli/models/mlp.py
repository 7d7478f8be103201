"""`mlp`: fully connected layers over flattened inputs; the one family that also takes tabular data."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from dlcli.models.activations import DEFAULT_ACTIVATION, make_activation
from dlcli.models.registry import MAX_WIDTH, MODELS, ModelSpec
from dlcli.validation import Range


def mlp(
    input_shape: Sequence[int],
    num_classes: int,
    hidden: Sequence[int] = (256, 128),
    dropout: float = 0.0,
    activation: str = DEFAULT_ACTIVATION,
) -> nn.Module:
    """Flatten, then Linear-activation(-Dropout) for each entry of `hidden`, then a linear head."""
    layers: list[nn.Module] = [nn.Flatten()]
    c_in = math.prod(int(d) for d in input_shape)
    for h in hidden:
        layers += [nn.Linear(c_in, int(h)), make_activation(activation)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        c_in = int(h)
    layers.append(nn.Linear(c_in, num_classes))
    return nn.Sequential(*layers)


MODELS.add("mlp", ModelSpec(
    mlp, "multi-layer perceptron; images or tabular features", image_only=False,
    ranges={"hidden": Range(ge=1, le=MAX_WIDTH), "dropout": Range(ge=0, lt=1)},
))
