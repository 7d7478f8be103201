"""Optimizers and learning-rate schedules by name.

All schedules are stepped once per batch (not per epoch) so that warmup and one-cycle behave the
same for a 2-epoch MNIST run and a 200-epoch CIFAR run.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dlcli.choices import DEFAULT_LR
from dlcli.choices import SCHEDULERS as SCHEDULER_NAMES
from dlcli.errors import UsageError
from dlcli.registry import Registry

OPTIMIZERS: Registry[Callable[..., torch.optim.Optimizer]] = Registry("optimizer")
SCHEDULERS: Registry[str] = Registry("scheduler")
for _name in SCHEDULER_NAMES:
    SCHEDULERS.add(_name, _name)


# The wrappers torch.optim puts around its methods that only matter under torch.compile
# (`torch._disable_dynamo`'s `inner`, `_use_grad_for_differentiable`'s `_use_grad`), and the
# profiler's step hook (`profile_hook_step`'s `wrapper`, which `Optimizer.__init__` puts back around
# our own `step`), by source file and function name (Python 3.10 has no code `co_qualname`).
_GUARDS = frozenset({
    ("torch/_compile.py", "inner"),
    ("optim/optimizer.py", "_use_grad"),
    ("optim/optimizer.py", "wrapper"),
})
_GUARDED_METHODS = ("add_param_group", "zero_grad", "state_dict", "load_state_dict")


def _unguarded(method: Callable[..., Any]) -> Callable[..., Any]:
    """`method` without torch.optim's guard wrappers; any other wrapper, and what is under it, stays."""
    return inspect.unwrap(method, stop=lambda f: _code_id(f) not in _GUARDS)


def _code_id(function: Any) -> tuple[str, str]:
    code = getattr(function, "__code__", None)
    if code is None:
        return ("", "")
    return ("/".join(Path(code.co_filename).parts[-2:]), code.co_name)


class _EagerOnly(torch.optim.Optimizer):
    """A torch.optim optimizer without its torch.compile guards: `class EagerX(_EagerOnly, X)`.

    Why by hand: torch.optim wraps `step`, `zero_grad`, `add_param_group` and the state-dict methods
    in guards that keep torch.compile from tracing into them (graph breaks, `torch._dynamo.disable`),
    and the first guard called imports torch._dynamo: 1.0-1.5 s of a 10 s default MNIST run on two
    cores. dlcli never compiles its training step or optimizer, so the guards do nothing here; do not
    pass these optimizers to torch.compile. The subclasses call the very functions the guards wrap,
    as the torch class has them: the same update (bit-identical, tested), the same state-dict format
    (checkpoints load either way), the profiler's and LR schedulers' step hooks still apply. Only the
    known guard wrappers are removed: should PyTorch add other ones, or drop the `__wrapped__` links,
    the method keeps them (slower to start, still right).
    """

    _torch_step: Callable[..., Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        torch_class = next(base for base in cls.__bases__ if base is not _EagerOnly)
        for name in _GUARDED_METHODS:
            setattr(cls, name, _unguarded(getattr(torch_class, name)))
        cls._torch_step = _unguarded(torch_class.step)

    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        # The guard this skips switched autograd to the optimizer's `differentiable` setting.
        with torch.set_grad_enabled(self.defaults["differentiable"]):
            return self._torch_step(closure)


class EagerSGD(_EagerOnly, torch.optim.SGD):
    pass


class EagerAdam(_EagerOnly, torch.optim.Adam):
    pass


class EagerAdamW(_EagerOnly, torch.optim.AdamW):
    pass


class EagerRMSprop(_EagerOnly, torch.optim.RMSprop):
    pass


@OPTIMIZERS.register("sgd")
def _sgd(groups: list[dict[str, Any]], lr: float, momentum: float, nesterov: bool) -> torch.optim.Optimizer:
    return EagerSGD(groups, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0)


@OPTIMIZERS.register("adam")
def _adam(groups: list[dict[str, Any]], lr: float, momentum: float, nesterov: bool) -> torch.optim.Optimizer:
    return EagerAdam(groups, lr=lr)


@OPTIMIZERS.register("adamw")
def _adamw(groups: list[dict[str, Any]], lr: float, momentum: float, nesterov: bool) -> torch.optim.Optimizer:
    return EagerAdamW(groups, lr=lr)


@OPTIMIZERS.register("rmsprop")
def _rmsprop(
    groups: list[dict[str, Any]], lr: float, momentum: float, nesterov: bool
) -> torch.optim.Optimizer:
    return EagerRMSprop(groups, lr=lr, momentum=momentum)


def parameter_groups(
    named: Iterable[tuple[str, nn.Parameter]], weight_decay: float, lr_scale: float = 1.0
) -> list[dict[str, Any]]:
    """Split parameters into decayed weights and undecayed biases/norm scales.

    Decaying BatchNorm/LayerNorm scales and biases hurts small models and buys nothing (the usual
    practice in timm and torchvision's references). `lr_scale` lets finetune give the head and the
    backbone different learning rates.
    """
    decay, no_decay = [], []
    for _, param in named:
        if param.requires_grad:
            (decay if param.ndim > 1 else no_decay).append(param)
    groups = [
        {"params": decay, "weight_decay": weight_decay, "lr_scale": lr_scale},
        {"params": no_decay, "weight_decay": 0.0, "lr_scale": lr_scale},
    ]
    return [g for g in groups if g["params"]]


def make_optimizer(
    name: str, groups: list[dict[str, Any]], lr: float | None, momentum: float = 0.9, nesterov: bool = True
) -> torch.optim.Optimizer:
    """Build the named optimizer; each group's `lr_scale` multiplies the base learning rate. It is
    torch.optim's without the torch.compile guards (`_EagerOnly`): for eager training only."""
    factory = OPTIMIZERS.get(name)
    base_lr = DEFAULT_LR[name] if lr is None else lr
    if base_lr <= 0:
        raise UsageError(f"--lr must be positive, got {base_lr}.")
    for group in groups:
        group["lr"] = base_lr * group.get("lr_scale", 1.0)
    return factory(groups, base_lr, momentum, nesterov)


def _momentum_cycle(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """One-cycle moves momentum opposite to the learning rate. PyTorch's default range (0.85-0.95)
    would ignore --momentum, so for optimizers with a momentum setting (sgd, rmsprop) the cycle
    peaks at the given momentum and dips to the same 0.85/0.95 of it; momentum 0 means no cycling.
    Adam-family optimizers keep PyTorch's default cycling of beta1."""
    momentum = optimizer.defaults.get("momentum")
    if momentum is None:
        return {}
    if momentum <= 0:
        return {"cycle_momentum": False}
    return {"max_momentum": momentum, "base_momentum": momentum * 0.85 / 0.95}


def make_scheduler(
    name: str,
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    steps_per_epoch: int,
    warmup_steps: int | None = None,
    step_epochs: int = 1,
    gamma: float = 0.5,
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """A per-batch schedule. `warmup_steps` ramps linearly from 0 (for onecycle it sets where the
    peak is; default 25 % of the run)."""
    SCHEDULERS.get(name)
    if name == "onecycle":
        # OneCycleLR divides by the length of each phase, so each needs at least two steps; a run
        # shorter than that just stops early in its schedule.
        total = max(total_steps, 5)
        pct = (warmup_steps / total) if warmup_steps else 0.25
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=[g["lr"] for g in optimizer.param_groups],
            total_steps=total,
            pct_start=min(max(pct, 2.5 / total), 1 - 2.5 / total),
            anneal_strategy="cos",
            **_momentum_cycle(optimizer),
        )
    warm = warmup_steps or 0

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if name == "cosine":
            progress = (step - warm) / max(1, total_steps - warm)
            return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        if name == "step":
            return gamma ** (step // max(1, step_epochs * steps_per_epoch))
        return 1.0

    if name == "none" and not warm:
        return None
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
