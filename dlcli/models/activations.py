"""Activation functions by name: the `activation` model argument of mlp, cnn and resnet.

Every entry exports to standard ONNX ops (Relu, Gelu or Erf, Tanh, Sigmoid, and Sigmoid+Mul for
SiLU). Static int8 quantization fuses Relu into the quantized convolution for free; the others run
as separate (int8 or fp32) nodes in the quantized graph, which `dlcli quantize` says in its report.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from dlcli.registry import Registry

ACTIVATIONS: Registry[Callable[[], nn.Module]] = Registry("activation")
ACTIVATIONS.add("relu", lambda: nn.ReLU(inplace=True))  # in place: one activation map fewer per layer
ACTIVATIONS.add("gelu", nn.GELU)
ACTIVATIONS.add("tanh", nn.Tanh)
ACTIVATIONS.add("sigmoid", nn.Sigmoid)
ACTIVATIONS.add("silu", lambda: nn.SiLU(inplace=True))

DEFAULT_ACTIVATION = "relu"
MONOTONIC = frozenset({"relu", "tanh", "sigmoid"})
"""Non-decreasing activations: they commute with max-pooling (max(f(a), f(b)) = f(max(a, b)))."""


def make_activation(name: str) -> nn.Module:
    """A fresh activation module; an unknown name fails with the list of choices (exit 2)."""
    return ACTIVATIONS.get(name)()
