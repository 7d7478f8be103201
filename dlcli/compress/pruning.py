"""Pruning as transforms over an in-memory model (no file I/O, no CLI, no training loop).

Three methods, each a `Pruner` whose `step()` moves the model one round closer to the target amount
(so a caller can train between rounds) and whose `finalize()` leaves a plain dense model:

- `l1-unstructured`: zero the smallest-|w| fraction of every Conv/Linear weight (torch.nn.utils.prune).
- `global-unstructured`: one |w| threshold across all those weights, so layers end up unevenly sparse.
  Both keep torch's mask reparametrization (weight = weight_orig * weight_mask) until `finalize()`, so
  recovery training cannot regrow pruned weights.
- `channel`: remove whole filters/neurons and every slice that depends on them (the next layer's
  inputs, BatchNorm statistics, residual partners) with torch-pruning's DependencyGraph. The result is
  a genuinely smaller dense model whose new widths are recorded by its state_dict's shapes.
"""

from __future__ import annotations

import contextlib
import math
import sys
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune

from dlcli.compress.prune_spec import PruneSpec
from dlcli.errors import UsageError
from dlcli.models.surgery import head_name
from dlcli.registry import Registry

PRUNABLE = (nn.modules.conv._ConvNd, nn.Linear)


class Pruner(ABC):
    """Interface: `step()` performs the next round; `finalize()` makes the result a plain model."""

    targets: dict[str, nn.Module]
    """The layers `amount` applies to, by module name."""

    def __init__(self, model: nn.Module, spec: PruneSpec, example_input: torch.Tensor) -> None:
        self.model, self.spec, self.example_input = model, spec, example_input
        self.round = 0

    @abstractmethod
    def step(self) -> float:
        """Prune one round; return the cumulative amount reached."""

    def finalize(self) -> None:  # noqa: B027 - a no-op by default: channel pruning is permanent already
        """Make the pruning permanent (idempotent)."""


PRUNERS: Registry[type[Pruner]] = Registry("pruning method")


def prunable_layers(model: nn.Module) -> dict[str, nn.Module]:
    return {name: m for name, m in model.named_modules() if isinstance(m, PRUNABLE)}


def resolve_ignored(model: nn.Module, names: list[str]) -> dict[str, nn.Module]:
    """Look up `--ignore` names, failing with the names that exist."""
    modules = dict(model.named_modules())
    for name in names:
        if name not in modules or not name:
            choices = ", ".join(prunable_layers(model))
            raise UsageError(f"--ignore {name!r}: no such module. Prunable layers: {choices}.")
    return {name: modules[name] for name in names}


def _targets(model: nn.Module, ignore: list[str], skip_head: bool) -> dict[str, nn.Module]:
    """Prunable layers minus ignored ones (and anything inside them), and the head if asked."""
    ignored = [f"{n}." for n in resolve_ignored(model, ignore)]
    head = head_name(model) if skip_head else None
    return {
        name: m for name, m in prunable_layers(model).items()
        if name != head and not any(f"{name}.".startswith(prefix) for prefix in ignored)
    }


class _Unstructured(Pruner, ABC):
    """Shared by the two unstructured methods: masks via torch.nn.utils.prune, made permanent at the end.

    Every round prunes by a count, not a fraction: torch re-applies fractions to the weights still
    left, so counts are what make the cumulative schedule exact.
    """

    def __init__(self, model: nn.Module, spec: PruneSpec, example_input: torch.Tensor) -> None:
        super().__init__(model, spec, example_input)
        # The classifier head is never pruned, as for channel pruning: it is tiny and every weight
        # of it maps a feature to a class.
        self.targets = _targets(model, spec.ignore, skip_head=True)
        if not self.targets:
            raise UsageError("nothing to prune: every Conv/Linear layer is ignored.")

    @staticmethod
    def _zeros(module: nn.Module) -> int:
        mask = getattr(module, "weight_mask", None)
        return 0 if mask is None else int((mask == 0).sum())

    def step(self) -> float:
        amount = self.spec.schedule()[self.round]
        self.round += 1
        self._prune_to(amount)
        return amount

    @abstractmethod
    def _prune_to(self, amount: float) -> None:
        """Bring every target layer (or all together) to `amount` zeros."""

    def finalize(self) -> None:
        for module in self.targets.values():
            if prune.is_pruned(module) and hasattr(module, "weight_mask"):
                prune.remove(module, "weight")


@PRUNERS.register("l1-unstructured")
class L1Unstructured(_Unstructured):
    def _prune_to(self, amount: float) -> None:
        for module in self.targets.values():
            more = round(amount * module.weight.numel()) - self._zeros(module)
            prune.l1_unstructured(module, "weight", amount=max(more, 0))


@PRUNERS.register("global-unstructured")
class GlobalUnstructured(_Unstructured):
    def _prune_to(self, amount: float) -> None:
        total = sum(m.weight.numel() for m in self.targets.values())
        more = round(amount * total) - sum(self._zeros(m) for m in self.targets.values())
        params = [(m, "weight") for m in self.targets.values()]
        prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=max(more, 0))


@PRUNERS.register("channel")
class ChannelPruner(Pruner):
    """torch-pruning's BasePruner with L1-magnitude group importance, one pruner for all rounds
    (it keeps the original widths, so each round's ratio is relative to them).

    Each layer's final width is decided here (`kept_channels`) and handed to torch-pruning as an
    exact per-layer ratio, rather than through its `round_to`, which rounds the kept count down
    (0.3 of 16 channels became 8) and prunes a layer whole or not at all when it rounds to zero."""

    def __init__(self, model: nn.Module, spec: PruneSpec, example_input: torch.Tensor) -> None:
        super().__init__(model, spec, example_input)
        check_channel_prunable(model)
        import torch_pruning as tp

        self.targets = _targets(model, spec.ignore, skip_head=True)
        if not self.targets:
            raise UsageError("nothing to prune: every layer except the classifier head is ignored.")
        ignored = [m for name, m in prunable_layers(model).items() if name not in self.targets]
        multiple = spec.channel_multiple or 1
        kept = {m: kept_channels(_width(m), spec.amount, multiple) for m in self.targets.values()}
        if all(k == _width(m) for m, k in kept.items()):
            raise UsageError(f"--amount {spec.amount:g} removes no channel: every layer rounds back to its width at "
                             f"--round-to {multiple}; use a larger --amount or --round-to 1.")
        ratios = {m: _exact_ratio(_width(m), k) for m, k in kept.items()}
        with quiet():
            self.pruner = tp.pruner.BasePruner(
                model, example_input, importance=tp.importance.MagnitudeImportance(p=1),
                pruning_ratio=spec.amount, pruning_ratio_dict=ratios, iterative_steps=spec.steps,
                ignored_layers=ignored,
            )

    def step(self) -> float:
        amount = self.spec.schedule()[self.round]
        self.round += 1
        with quiet(), torch.no_grad():
            self.pruner.step()
        return amount


def kept_channels(width: int, amount: float, multiple: int) -> int:
    """Channels a layer keeps: of the multiples of `multiple` (at least one) and the layer's own
    width, the one nearest to (1 - amount) x width; a layer narrower than `multiple` keeps
    (1 - amount) x width, rounded, at least 1."""
    target = (1 - amount) * width
    if width < multiple:
        return max(1, math.floor(target + 0.5))
    aligned = min(width, max(multiple, multiple * math.floor(target / multiple + 0.5)))
    return aligned if abs(aligned - target) <= abs(width - target) else width


def _exact_ratio(width: int, kept: int) -> float:
    """The ratio torch-pruning turns into exactly `kept` channels: it keeps int(width x (1 - ratio)),
    so aim half a channel above `kept` rather than at a float that may land just below it."""
    return 0.0 if kept >= width else (width - kept - 0.5) / width


def _width(module: nn.Module) -> int:
    return int(module.weight.shape[0])


def check_channel_prunable(model: nn.Module) -> None:
    """Refuse models whose forward reads widths that channel pruning would change.

    The vit's attention splits its projection by a head count and scale fixed at construction, and
    its residual stream's width is shared with positional embeddings; removing channels there would
    give a model that the checkpoint's architecture cannot rebuild. Unstructured methods work on it.
    """
    for name, module in model.named_modules():
        if hasattr(module, "heads"):
            raise UsageError(
                f"channel pruning does not support attention layers ({name or 'model'} splits its width "
                "into heads); use --method l1-unstructured or global-unstructured for this model."
            )


def make_pruner(model: nn.Module, spec: PruneSpec, example_input: torch.Tensor) -> Pruner:
    return PRUNERS.get(spec.method)(model, spec, example_input)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """torch-pruning prints and warns on stdout, which carries only our result: send it to stderr."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("ignore")
        yield


# ---- statistics ----------------------------------------------------------------------------------


def layer_stats(model: nn.Module) -> dict[str, dict[str, Any]]:
    """Per Conv/Linear layer: weight shape, size and zeros (of the masked weight while pruning)."""
    stats = {}
    for name, module in prunable_layers(model).items():
        weight = module.weight.detach()
        stats[name] = {
            "type": type(module).__name__,
            "shape": list(weight.shape),
            "params": weight.numel(),
            "zeros": int((weight == 0).sum()),
        }
    return stats


def sparsity(stats: dict[str, dict[str, Any]], layers: list[str] | None = None) -> float:
    """Zero fraction over the weights of `layers` (default all)."""
    chosen = [stats[n] for n in (layers if layers is not None else stats)]
    total = sum(s["params"] for s in chosen)
    return sum(s["zeros"] for s in chosen) / total if total else 0.0


def channel_fraction_removed(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]],
                             layers: list[str]) -> float:
    """Fraction of output channels removed over `layers` (the structured analogue of sparsity)."""
    total = sum(before[n]["shape"][0] for n in layers)
    kept = sum(after[n]["shape"][0] for n in layers)
    return 1 - kept / total if total else 0.0


def macs_and_params(model: nn.Module, example_input: torch.Tensor) -> tuple[int, int]:
    """Multiply-accumulates of one forward pass at the example's batch size, and parameter count."""
    import torch_pruning as tp

    with quiet(), torch.no_grad():
        macs, params = tp.utils.count_ops_and_params(model, example_input)
    return int(macs), int(params)


# ---- masks and state_dicts -------------------------------------------------------------------------


def dense_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state_dict the architecture expects: masks folded in (weight = weight_orig * weight_mask)
    and the mask buffers dropped, without touching the model's reparametrization."""
    state = model.state_dict()
    dense: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.endswith("_mask") and key[: -len("_mask")] + "_orig" in state:
            continue
        if key.endswith("_orig") and key[: -len("_orig")] + "_mask" in state:
            base = key[: -len("_orig")]
            dense[base] = (value * state[base + "_mask"]).detach().clone()
        else:
            dense[key] = value.detach().clone()
    return dense


def load_dense_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load a dense state_dict into a model that may still carry pruning masks (into weight_orig;
    the mask keeps the pruned entries zero)."""
    own = model.state_dict()
    mapped = {}
    for key, value in state.items():
        mapped[key + "_orig" if key + "_orig" in own else key] = value
    for key in own:
        if key.endswith("_mask") and key not in mapped:
            mapped[key] = own[key]
    model.load_state_dict(mapped, strict=True)
