"""`cnn`: the default. A compact ConvNet built only from ops that export to ONNX and quantize to
int8 well (Slice, Conv+BN folds, ReLU, MaxPool, global average pool, one Linear); other activations
are a model argument (`-a activation=gelu`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dlcli.errors import UsageError
from dlcli.models.activations import DEFAULT_ACTIVATION, MONOTONIC, make_activation
from dlcli.models.registry import MAX_WIDTH, MODELS, ModelSpec
from dlcli.validation import Range


class ConvNet(nn.Sequential):
    """The cnn's layers, run on the input less `crop` pixels at each edge (one ONNX Slice).

    Why crop: MNIST's digits were size-normalised into the centre 20x20 of the 28x28 frame; its outer 2
    pixels hold 0.24 % of the ink (0.23 % on the test split), and leaving them out takes 27 % of the
    pixels, so of the work, out of every layer (the MNIST recipe, issue #15). The crop is done here
    rather than by a layer of its own so that layer names stay what they are without it (`body.0` is
    the first convolution, as `--ignore body.0` says); a slice `net[a:b]` does not crop.
    """

    def __init__(self, *layers: nn.Module, crop: int = 0) -> None:
        super().__init__(*layers)
        self.crop = crop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.crop:
            b = self.crop
            x = x[:, :, b:x.shape[2] - b, b:x.shape[3] - b]
        return super().forward(x)


def conv_block(cin: int, cout: int, activation: str, pool: bool, norm: bool = True) -> list[nn.Module]:
    """conv (bias only without BN) - BN - activation - 2x2 max-pool.

    A monotonic activation (ReLU, tanh, sigmoid) commutes with max-pooling, so it is applied after the
    pool, on a quarter of the values: the same function and gradients, less work. GELU and SiLU are
    not monotonic and keep the usual order.
    """
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1, bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm2d(cout))
    act = make_activation(activation)
    if not pool:
        return [*layers, act]
    if activation in MONOTONIC:
        return [*layers, nn.MaxPool2d(2), act]
    return [*layers, act, nn.MaxPool2d(2)]


def cnn(
    input_shape: Sequence[int],
    num_classes: int,
    channels: Sequence[int] = (8, 16, 32, 64),
    width: float = 1.0,
    pool_stages: int = 3,
    dropout: float = 0.0,
    activation: str = DEFAULT_ACTIVATION,
    crop: int = 0,
    stem_norm: bool = True,
) -> nn.Module:
    """ConvNet: one conv-BN-activation block per entry of `channels` (scaled by `width`), a 2x2 max-pool
    after each of the first `pool_stages` blocks, then global average pooling and a linear head.

    Global pooling makes the head independent of the input size, so 28x28 and 32x32 both work.
    `crop` drops that many pixels at each edge first; `stem_norm=false` leaves BatchNorm out of the
    first block, the one at full resolution (the input is already normalised).
    """
    c_in, height, width_px = (int(d) for d in input_shape)
    if 2 * crop >= min(height, width_px):
        raise UsageError(f"cnn: crop={crop} leaves nothing of a {height}x{width_px} input.")
    layers: list[nn.Module] = []
    size = min(height, width_px) - 2 * crop
    for i, c in enumerate(channels):
        c_out = max(1, round(c * width))
        pool = i < pool_stages and size >> (i + 1) >= 2
        layers += conv_block(c_in, c_out, activation, pool, norm=stem_norm or i > 0)
        c_in = c_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(c_in, num_classes))
    return ConvNet(*layers, crop=crop)


MODELS.add("cnn", ModelSpec(
    cnn, "compact ConvNet (conv-BN-ReLU, max-pool, global pool); the default",
    ranges={"channels": Range(ge=1, le=MAX_WIDTH, min_items=1), "width": Range(gt=0, le=64),
            "pool_stages": Range(ge=0, le=16), "dropout": Range(ge=0, lt=1), "crop": Range(ge=0, le=MAX_WIDTH)},
))
