"""dlcli's optimizers are torch.optim's without the torch.compile guards (dlcli.optim._EagerOnly):
the same updates and state, and a training run that never imports torch._dynamo."""

from __future__ import annotations

import copy
import functools
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from dlcli.optim import _unguarded, make_optimizer, make_scheduler, parameter_groups

TORCH_CLASSES = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
                 "rmsprop": torch.optim.RMSprop}
# What make_optimizer passes with its defaults (momentum 0.9, nesterov).
TORCH_ARGS = {"sgd": {"momentum": 0.9, "nesterov": True}, "adam": {}, "adamw": {}, "rmsprop": {"momentum": 0.9}}


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))


def _train(model: nn.Module, optimizer: torch.optim.Optimizer, steps: int = 6) -> None:
    """`steps` steps under a one-cycle schedule; every warning is an error (the scheduler warns when it
    cannot see the optimizer's steps), and the step hooks must run once per step."""
    calls = {"pre": 0, "post": 0}
    optimizer.register_step_pre_hook(lambda *_: calls.__setitem__("pre", calls["pre"] + 1))
    optimizer.register_step_post_hook(lambda *_: calls.__setitem__("post", calls["post"] + 1))
    generator = torch.Generator().manual_seed(1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scheduler = make_scheduler("onecycle", optimizer, total_steps=steps, steps_per_epoch=steps)
        assert scheduler is not None
        for _ in range(steps):
            x, y = torch.randn(16, 6, generator=generator), torch.randint(0, 3, (16,), generator=generator)
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
            scheduler.step()
    assert calls == {"pre": steps, "post": steps}


@pytest.mark.parametrize("name", sorted(TORCH_CLASSES))
def test_updates_and_state_match_torch_optim(name: str) -> None:
    ours_model, torch_model = _model(), _model()
    ours = make_optimizer(name, parameter_groups(ours_model.named_parameters(), 1e-3), lr=0.05)
    # The same groups and settings, built by torch.optim's own class.
    reference = TORCH_CLASSES[name](parameter_groups(torch_model.named_parameters(), 1e-3), lr=0.05,
                                    **TORCH_ARGS[name])
    assert isinstance(ours, TORCH_CLASSES[name]) and type(ours) is not TORCH_CLASSES[name]
    _train(ours_model, ours)
    _train(torch_model, reference)
    for mine, theirs in zip(ours_model.state_dict().values(), torch_model.state_dict().values(), strict=True):
        assert torch.equal(mine, theirs)
    mine_state, their_state = ours.state_dict(), reference.state_dict()
    assert mine_state["param_groups"] == their_state["param_groups"]
    assert mine_state["state"].keys() == their_state["state"].keys()
    for index, slots in their_state["state"].items():
        for slot, value in slots.items():
            assert torch.equal(torch.as_tensor(mine_state["state"][index][slot]), torch.as_tensor(value)), slot


def test_state_loads_across_torch_optim_and_back() -> None:
    """A checkpoint's optimizer state from either class resumes in the other."""
    model = _model()
    ours = make_optimizer("sgd", parameter_groups(model.named_parameters(), 1e-3), lr=0.1)
    _train(model, ours)
    reference = torch.optim.SGD(parameter_groups(copy.deepcopy(model).named_parameters(), 1e-3), lr=0.1,
                                momentum=0.9)
    reference.load_state_dict(ours.state_dict())
    again = make_optimizer("sgd", parameter_groups(model.named_parameters(), 1e-3), lr=0.1)
    again.load_state_dict(reference.state_dict())
    momentum = [s["momentum_buffer"] for s in again.state_dict()["state"].values()]
    expected = [s["momentum_buffer"] for s in ours.state_dict()["state"].values()]
    assert len(momentum) == len(expected) > 0
    assert all(torch.equal(a, b) for a, b in zip(momentum, expected, strict=True))


def test_step_runs_without_autograd_and_restores_it() -> None:
    """The guard dlcli skips switched autograd off for the update (the optimizer is not
    `differentiable`); the subclass does the same, and gives back the caller's mode."""
    model = _model()
    optimizer = make_optimizer("adam", parameter_groups(model.named_parameters(), 0.0), lr=0.01)
    seen: list[bool] = []
    optimizer._torch_step = lambda closure: seen.append(torch.is_grad_enabled())  # type: ignore[method-assign]
    optimizer.step()
    with torch.no_grad():
        optimizer.step()
        assert not torch.is_grad_enabled()
    assert seen == [False, False] and torch.is_grad_enabled()


def test_only_the_known_guards_are_removed() -> None:
    """A wrapper torch.optim might add that does real work is kept (with what is under it)."""
    def raw() -> str:
        return "raw"

    @functools.wraps(raw)
    def working_wrapper() -> str:
        return "wrapped " + raw()

    assert _unguarded(working_wrapper)() == "wrapped raw"
    guarded = torch.optim.Optimizer.zero_grad
    assert guarded.__code__.co_name == "inner"  # torch._disable_dynamo's guard: what the subclasses remove
    assert _unguarded(guarded).__code__.co_name == "zero_grad"
    assert _unguarded(guarded).__code__.co_filename.endswith("optimizer.py")


NO_DYNAMO = "print(sorted(m for m in ('torch._dynamo', 'sympy') if m in sys.modules))\n"


def test_the_optimizers_never_import_torch_dynamo() -> None:
    """Build, step, zero, save and load each optimizer in a fresh interpreter: no torch._dynamo."""
    code = (
        "import sys, torch\n"
        "from dlcli.optim import OPTIMIZERS, make_optimizer, make_scheduler\n"
        "for name in OPTIMIZERS.names():\n"
        "    w = torch.nn.Parameter(torch.ones(3))\n"
        "    opt = make_optimizer(name, [{'params': [w]}], lr=0.1)\n"
        "    sched = make_scheduler('onecycle', opt, 10, 10)\n"
        "    (w * w).sum().backward(); opt.step(); sched.step(); opt.zero_grad()\n"
        "    opt.load_state_dict(opt.state_dict())\n"
        + NO_DYNAMO
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.slow
def test_a_training_run_never_imports_torch_dynamo(tmp_path: Path) -> None:
    """The point of the subclasses: train, then the test evaluation that rebuilds best.pt on the
    meta device, without torch._dynamo (1.0-1.5 s to import) or sympy (0.7 s)."""
    code = (
        "import sys\n"
        "from dlcli.cli import main\n"
        f"argv = ['train', '--epochs', '1', '--train-samples', '300', '--out', {str(tmp_path / 'run')!r}, '-q']\n"
        "try:\n    main(argv)\nexcept SystemExit as exc:\n    assert exc.code in (0, None), exc.code\n"
        + NO_DYNAMO
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "run" / "best.pt").is_file()
    assert done.stdout.strip().splitlines()[-1] == "[]"
