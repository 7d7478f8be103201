"""Rebuild a structurally pruned model from its state_dict without pickling a module.

Channel pruning changes layer widths, so the pruned weights no longer fit the architecture that the
checkpoint's name and arguments describe. Rather than storing a second description of every layer,
the state_dict's tensor shapes *are* the record: each parameter or buffer whose stored shape
differs is replaced by an empty one of that shape, and the shape attributes the layers read in
`forward` (LayerNorm's normalized_shape) or report (in/out channels) are updated to match.
"""

from __future__ import annotations

import torch
from torch import nn


def _sync_attributes(module: nn.Module) -> None:
    weight = getattr(module, "weight", None)
    if weight is None:
        return
    if isinstance(module, nn.Conv2d):
        module.out_channels = weight.shape[0]
        module.in_channels = weight.shape[1] * module.groups
    elif isinstance(module, nn.Linear):
        module.out_features, module.in_features = weight.shape
    elif isinstance(module, nn.modules.batchnorm._BatchNorm):
        module.num_features = weight.shape[0]
    elif isinstance(module, nn.LayerNorm):
        module.normalized_shape = tuple(weight.shape)


def match_state_dict_shapes(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> list[str]:
    """Resize `model`'s tensors in place to the shapes in `state_dict`; return the names changed."""
    changed: list[str] = []
    for module_name, module in model.named_modules():
        touched = False
        prefix = f"{module_name}." if module_name else ""
        for kind in ("_parameters", "_buffers"):
            tensors = getattr(module, kind)
            for name, tensor in list(tensors.items()):
                stored = state_dict.get(prefix + name)
                if tensor is None or stored is None or stored.shape == tensor.shape:
                    continue
                fresh = torch.empty(stored.shape, dtype=tensor.dtype, device=tensor.device)
                if kind == "_parameters":
                    fresh = nn.Parameter(fresh, requires_grad=tensor.requires_grad)
                tensors[name] = fresh
                changed.append(prefix + name)
                touched = True
        if touched:
            _sync_attributes(module)
    return changed
