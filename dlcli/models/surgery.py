"""Small, explicit changes to a built model that transfer learning needs: find and replace the
classifier head, adapt the first convolution to a different channel count, freeze parts."""

from __future__ import annotations

import torch
from torch import nn

from dlcli.errors import UsageError


def head_name(model: nn.Module) -> str:
    """The classifier head: the last nn.Linear in module order (true of every registered model)."""
    names = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not names:
        raise UsageError("this model has no linear classifier head to replace.")
    return names[-1]


def head_parameter_names(model: nn.Module) -> set[str]:
    prefix = head_name(model) + "."
    return {name for name, _ in model.named_parameters() if name.startswith(prefix)}


def adapt_input_conv(weight: torch.Tensor, channels: int) -> torch.Tensor:
    """Resize a first-conv kernel (out, c_old, k, k) to `channels` inputs.

    Mean over the old channels, repeated and rescaled by c_old / channels, so that a grey image
    copied into every new channel gives the same response as before (timm's adapt_input_conv idea).
    """
    old = weight.shape[1]
    return weight.mean(dim=1, keepdim=True).repeat(1, channels, 1, 1) * (old / channels)


def transfer_weights(
    target: nn.Module, source_state: dict[str, torch.Tensor], skip: set[str]
) -> tuple[list[str], list[str]]:
    """Copy `source_state` into `target` except `skip`; adapt the input conv across channel counts.

    Returns (adapted, refused): parameter names whose shapes were adapted, and names whose shapes
    differ in a way that cannot be transferred (the caller refuses those clearly).
    """
    state = target.state_dict()
    adapted, refused = [], []
    for name, tensor in source_state.items():
        if name in skip or name.startswith("normalize.") or name not in state:
            continue
        want = state[name].shape
        if tensor.shape == want:
            state[name] = tensor
        elif tensor.ndim == 4 and tensor.shape[0] == want[0] and tensor.shape[2:] == want[2:] and not adapted:
            state[name] = adapt_input_conv(tensor, want[1])
            adapted.append(name)
        else:
            refused.append(f"{name} {list(tensor.shape)} -> {list(want)}")
    target.load_state_dict(state)
    return adapted, refused


def set_frozen(model: nn.Module, trainable: set[str] | None) -> None:
    """requires_grad only for parameter names in `trainable` (None: everything trainable)."""
    for name, param in model.named_parameters():
        param.requires_grad_(trainable is None or name in trainable)


def train_mode_with_frozen_norms(frozen_norm_modules: list[nn.Module]):
    """A `train_mode` for the loop: train() everything, then keep these norm layers in eval so their
    running statistics stay as pretrained."""

    def train_mode(model: nn.Module) -> None:
        model.train()
        for module in frozen_norm_modules:
            module.eval()

    return train_mode


def norm_modules_outside(model: nn.Module, keep: str) -> list[nn.Module]:
    return [
        m for name, m in model.named_modules()
        if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.LayerNorm)) and not name.startswith(keep)
    ]
