"""dlcli's optimizers are torch.optim's without the torch.compile guards (dlcli.optim._EagerOnly):
the same updates and state, and a training run that never imports torch._dynamo."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from dlcli.optim import make_optimizer, make_scheduler, parameter_groups

TORCH_CLASSES = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
                 "rmsprop": torch.optim.RMSprop}
# What make_optimizer passes with its defaults (momentum 0.9, nesterov).
TORCH_ARGS = {"sgd": {"momentum": 0.9, "nesterov": True}, "adam": {}, "adamw": {}, "rmsprop": {"momentum": 0.9}}


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))


def _train(model: nn.Module, optimizer: torch.optim.Optimizer, steps: int = 6) -> None:
    scheduler = make_scheduler("onecycle", optimizer, total_steps=steps, steps_per_epoch=steps)
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x, y = torch.randn(16, 6, generator=generator), torch.randint(0, 3, (16,), generator=generator)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        assert scheduler is not None
        scheduler.step()


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


def test_step_keeps_autograd_off_and_restores_it() -> None:
    model = _model()
    optimizer = make_optimizer("adam", parameter_groups(model.named_parameters(), 0.0), lr=0.01)
    seen: list[bool] = []
    optimizer.register_step_post_hook(lambda *_: seen.append(torch.is_grad_enabled()))
    nn.functional.cross_entropy(model(torch.randn(4, 6)), torch.tensor([0, 1, 2, 0])).backward()
    optimizer.step()
    assert seen == [True]  # post hooks run after the step, with autograd restored
    assert torch.is_grad_enabled()


def test_a_training_run_never_imports_torch_dynamo(tmp_path: Path) -> None:
    """The point of the subclasses: train, then the test evaluation that rebuilds best.pt on the
    meta device, without torch._dynamo (1.2-1.5 s to import) or sympy (0.7 s)."""
    code = (
        "import sys\n"
        "from dlcli.cli import main\n"
        f"argv = ['train', '--epochs', '1', '--train-samples', '300', '--out', {str(tmp_path / 'run')!r}, '-q']\n"
        "try:\n    main(argv)\nexcept SystemExit as exc:\n    assert exc.code in (0, None), exc.code\n"
        "print(sorted(m for m in ('torch._dynamo', 'sympy') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "run" / "best.pt").is_file()
    assert done.stdout.strip().splitlines()[-1] == "[]"
