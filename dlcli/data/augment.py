"""Batched augmentation on tensors: one affine grid per batch instead of per-sample PIL work.

Flip, rotation and crop (random translation after zero padding, as in the usual pad-and-crop
recipe) are all affine maps, so they are composed into one matrix per sample and applied with a
single `grid_sample` call: the cost is one pass over the batch whatever the combination.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from dlcli.errors import UsageError

AUGMENTATIONS = ("flip", "rotate", "crop")


def parse_augment(names: Sequence[str] | str | None) -> list[str]:
    """Accept "flip,rotate" or ["flip", "rotate"]; reject unknown names with the valid ones."""
    if not names:
        return []
    if isinstance(names, str):
        names = [names]
    parsed = [n.strip().lower() for item in names for n in item.split(",") if n.strip()]
    for name in parsed:
        if name not in AUGMENTATIONS and name != "none":
            raise UsageError(f"unknown augmentation {name!r}. Choose from: {', '.join(AUGMENTATIONS)}.")
    return [n for n in parsed if n != "none"]


def make_augment(
    names: Sequence[str],
    max_degrees: float = 15.0,
    crop_padding: int = 2,
) -> Callable[[torch.Tensor, torch.Generator | None], torch.Tensor] | None:
    """Return a function (x (N, C, H, W), generator) -> x' applying the named augmentations, or None.

    The generator is passed per call, not bound here, so the caller decides where randomness comes
    from (Batches draws one per (seed, epoch, step), which keeps resumed runs exact)."""
    names = parse_augment(names)
    if not names:
        return None

    def augment(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if x.ndim != 4:
            raise UsageError("--augment applies to image data only.")
        n, _, h, w = x.shape
        rand = torch.rand(n, 4, generator=generator).to(x.device)
        theta = torch.zeros(n, 2, 3, device=x.device)
        angle = (rand[:, 0] * 2 - 1) * math.radians(max_degrees) if "rotate" in names else rand[:, 0] * 0
        sign = torch.where(rand[:, 1] < 0.5, -1.0, 1.0) if "flip" in names else torch.ones_like(angle)
        theta[:, 0, 0] = torch.cos(angle) * sign
        theta[:, 0, 1] = -torch.sin(angle)
        theta[:, 1, 0] = torch.sin(angle) * sign
        theta[:, 1, 1] = torch.cos(angle)
        if "crop" in names:  # shift by up to `crop_padding` pixels; grid units are 2/size per pixel
            theta[:, 0, 2] = (rand[:, 2] * 2 - 1) * crop_padding * 2 / w
            theta[:, 1, 2] = (rand[:, 3] * 2 - 1) * crop_padding * 2 / h
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    return augment
