"""From numpy splits to batches on a device.

The whole split is kept as one tensor (uint8 pixels stay uint8, four times smaller than float) and
batches are sliced from it and scaled to float on the fly. This replaces a DataLoader with worker
processes: for in-memory data it is several times faster on a small CPU and trivially reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from dlcli.data.dataset import Dataset, Split
from dlcli.errors import UsageError


@dataclass
class TensorSplit:
    """A split as tensors on a device, plus the factor that turns stored values into [0, 1] inputs.

    `extras` are further per-sample tensors (e.g. cached teacher logits) sliced along with x and y.
    """

    x: torch.Tensor
    y: torch.Tensor
    scale: float
    extras: tuple[torch.Tensor, ...] = field(default_factory=tuple)

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def subset(self, index: torch.Tensor) -> TensorSplit:
        return TensorSplit(self.x[index], self.y[index], self.scale, tuple(e[index] for e in self.extras))

    def with_extra(self, tensor: torch.Tensor) -> TensorSplit:
        return TensorSplit(self.x, self.y, self.scale, (*self.extras, tensor))


def to_tensor_split(split: Split, scale: float, device: torch.device) -> TensorSplit:
    x = torch.from_numpy(split.x.copy() if not split.x.flags.writeable else split.x)
    y = torch.from_numpy(split.y).long()
    return TensorSplit(x.to(device), y.to(device), scale)


def carve_validation(
    split: TensorSplit, fraction: float, generator: torch.Generator
) -> tuple[TensorSplit, TensorSplit | None]:
    """Seeded random train/validation split; `fraction` 0 means no validation set."""
    if not 0 <= fraction < 1:
        raise UsageError(f"--val-split must be in [0, 1), got {fraction}.")
    n_val = int(round(len(split) * fraction))
    if n_val == 0:
        return split, None
    if n_val >= len(split):
        raise UsageError("--val-split leaves no training samples.")
    order = torch.randperm(len(split), generator=generator).to(split.x.device)
    return split.subset(order[n_val:]), split.subset(order[:n_val])


def limit_samples(split: TensorSplit, count: int | None, generator: torch.Generator) -> TensorSplit:
    """Keep a seeded, class-balanced subset of `count` samples (a small labelled budget)."""
    if count is None or count >= len(split):
        return split
    if count <= 0:
        raise UsageError(f"--train-samples must be positive, got {count}.")
    order = torch.randperm(len(split), generator=generator).to(split.x.device)
    labels = split.y[order]
    classes = torch.unique(labels)
    per_class = max(1, count // len(classes))
    picked = torch.cat([order[labels == c][:per_class] for c in classes])
    if len(picked) < count:  # top up with the first unpicked samples
        mask = torch.ones(len(split), dtype=torch.bool, device=order.device)
        mask[picked] = False
        picked = torch.cat([picked, order[mask[order]][: count - len(picked)]])
    return split.subset(picked[:count])


class Batches:
    """Iterate (inputs, labels) batches of a TensorSplit: float inputs in [0, 1], optional shuffle
    (seeded), optional batched augmentation and channels-last layout."""

    def __init__(
        self,
        split: TensorSplit,
        batch_size: int,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        channels_last: bool = False,
    ) -> None:
        if batch_size <= 0:
            raise UsageError(f"--batch-size must be positive, got {batch_size}.")
        self.split = split
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator
        self.transform = transform
        self.channels_last = channels_last and split.x.ndim == 4

    def __len__(self) -> int:
        return math.ceil(len(self.split) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        n = len(self.split)
        device = self.split.x.device
        order = torch.randperm(n, generator=self.generator).to(device) if self.shuffle else None
        for start in range(0, n, self.batch_size):
            if order is None:
                window = slice(start, start + self.batch_size)
                xb, yb = self.split.x[window], self.split.y[window]
                extras = tuple(e[window] for e in self.split.extras)
            else:
                index = order[start : start + self.batch_size]
                xb, yb = self.split.x[index], self.split.y[index]
                extras = tuple(e[index] for e in self.split.extras)
            xb = xb.float()
            if self.split.scale != 1.0:
                xb = xb.mul_(self.split.scale)
            if self.transform is not None:
                xb = self.transform(xb)
            if self.channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            yield (xb, yb, *extras)


def dataset_splits(dataset: Dataset, device: torch.device) -> tuple[TensorSplit, TensorSplit | None]:
    """Train and test splits of a loaded dataset as tensors on `device`."""
    scale = dataset.input_scale()
    train = to_tensor_split(dataset.train, scale, device)
    test = to_tensor_split(dataset.test, scale, device) if dataset.test is not None else None
    return train, test
