"""The model registry and the wrapper that puts normalization inside every model."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from dlcli.errors import UsageError
from dlcli.models.activations import ACTIVATIONS
from dlcli.registry import Registry
from dlcli.validation import Range, coerce, describe_field


@dataclass(frozen=True)
class ModelSpec:
    """A model family: `factory(input_shape, num_classes, **args) -> nn.Module`.

    `image_only` families need (C, H, W) inputs; others also accept flat (F,) features. `ranges`
    declares the allowed range of each constructor argument (its type is the factory's annotation):
    `model_args` checks user values and checkpoints' recorded values against both, and `dlcli models`
    shows them.
    """

    factory: Callable[..., nn.Module]
    summary: str
    image_only: bool = True
    ranges: dict[str, Range] = field(default_factory=dict)

    def arguments(self) -> dict[str, inspect.Parameter]:
        params = inspect.signature(self.factory).parameters
        return {k: p for k, p in params.items() if k not in ("input_shape", "num_classes")}

    def argument_types(self) -> dict[str, Any]:
        hints = typing.get_type_hints(self.factory)
        return {k: hints.get(k, Any) for k in self.arguments()}

    def describe_arguments(self) -> dict[str, str]:
        """{"width": "a number, > 0", ...} for `dlcli models`."""
        return {k: f"one of {', '.join(NAMED_ARGUMENTS[k].names())}" if k in NAMED_ARGUMENTS
                else describe_field(hint, self.ranges.get(k)) for k, hint in self.argument_types().items()}


NAMED_ARGUMENTS: dict[str, Registry[Any]] = {"activation": ACTIVATIONS}
"""Model arguments that name a registry entry, whichever model takes them: checked with the other
arguments (before any data is loaded), not when the model is built."""


MODELS: Registry[ModelSpec] = Registry("model")

# Upper bounds for layer widths and depths: far above any model dlcli trains, low enough that a typo
# or a crafted checkpoint (channels=[10**9]) is refused instead of allocating tens of gigabytes.
MAX_WIDTH = 1 << 16
MAX_DEPTH = 1000


def register_model(name: str, summary: str = "", image_only: bool = True) -> Callable[[Callable[..., nn.Module]],
                                                                                    Callable[..., nn.Module]]:
    """Decorator for a factory `f(input_shape, num_classes, **args) -> nn.Module`, as timm's
    `@register_model`: the model is then known to every command by `name` (see dlcli.models.plugins
    for making a model defined outside dlcli importable by the CLI)."""

    def add(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        MODELS.add(name, ModelSpec(factory, summary or (factory.__doc__ or name).strip().splitlines()[0], image_only))
        return factory

    return add


class Normalize(nn.Module):
    """(x - mean) / std with per-channel (images) or per-feature (tabular) statistics.

    Kept as buffers so they travel with the state_dict and into ONNX as constants.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], input_rank: int) -> None:
        super().__init__()
        shape = (1, len(mean)) + (1,) * (input_rank - 1)
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).reshape(shape))
        # The division runs on the CPU even while a checkpoint is rebuilt on the meta device:
        # arithmetic on meta tensors goes through PyTorch's Python reference kernels, whose first
        # call imports torch._dynamo (1.0-1.5 s of a 10 s training run).
        inv_std = 1.0 / torch.tensor(list(std), dtype=torch.float32, device="cpu").reshape(shape)
        self.register_buffer("inv_std", inv_std.to(self.mean.device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) * self.inv_std


class Classifier(nn.Module):
    """`normalize` then `body`: what every command trains, saves, prunes and exports."""

    def __init__(self, body: nn.Module, mean: Sequence[float], std: Sequence[float], input_rank: int) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std, input_rank)
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.normalize(x))


def model_args(name: str, args: dict[str, Any] | None) -> dict[str, Any]:
    """Check constructor arguments against the model's own declaration (the factory's annotations and
    `ModelSpec.ranges`) and fill defaults.

    The result is what the checkpoint stores, so a later load rebuilds the same model.
    """
    spec = MODELS.get(name)
    allowed = spec.arguments()
    types = spec.argument_types()
    resolved = {
        k: list(p.default) if isinstance(p.default, tuple) else p.default
        for k, p in allowed.items()
        if p.default is not inspect.Parameter.empty
    }
    if args is not None and not isinstance(args, dict):
        raise UsageError(f"model arguments must be a mapping of names to values, got {args!r}.")
    for key, value in (args or {}).items():
        key = str(key).replace("-", "_")
        if key not in allowed:
            options = ", ".join(allowed) or "none"
            raise UsageError(f"model {name!r} has no argument {key!r}. Its arguments: {options}.")
        resolved[key] = coerce(f"model argument {key} ({name})", value, types[key], spec.ranges.get(key))
        if key in NAMED_ARGUMENTS:
            NAMED_ARGUMENTS[key].get(resolved[key])  # an unknown name fails with the choices
    return resolved


def create_model(
    name: str,
    input_shape: Sequence[int],
    num_classes: int,
    mean: Sequence[float],
    std: Sequence[float],
    args: dict[str, Any] | None = None,
) -> Classifier:
    """Build a registered model for inputs of `input_shape` (without batch) and `num_classes`."""
    spec = MODELS.get(name)
    input_shape = tuple(int(d) for d in input_shape)
    if spec.image_only and len(input_shape) != 3:
        raise UsageError(
            f"model {name!r} needs image inputs (channels, height, width); this data has shape "
            f"{list(input_shape)}. Use --model mlp for tabular data."
        )
    body = spec.factory(input_shape=input_shape, num_classes=num_classes, **model_args(name, args))
    return Classifier(body, mean, std, input_rank=len(input_shape))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
