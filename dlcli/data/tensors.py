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

from dlcli.data.dataset import Split
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
    order = torch.randperm(len(split), generator=generator).to(split.y.device)
    return split.subset(order[n_val:]), split.subset(order[:n_val])


def limit_samples(split: TensorSplit, count: int | None, generator: torch.Generator) -> TensorSplit:
    """Keep a seeded, class-balanced subset of `count` samples (a small labelled budget)."""
    if count is None or count >= len(split):
        return split
    if count <= 0:
        raise UsageError(f"--train-samples must be positive, got {count}.")
    order = torch.randperm(len(split), generator=generator).to(split.y.device)
    labels = split.y[order]
    classes = torch.unique(labels)
    per_class = max(1, count // len(classes))
    picked = torch.cat([order[labels == c][:per_class] for c in classes])
    if len(picked) < count:  # top up with the first unpicked samples
        mask = torch.ones(len(split), dtype=torch.bool, device=order.device)
        mask[picked] = False
        picked = torch.cat([picked, order[mask[order]][: count - len(picked)]])
    return split.subset(picked[:count])


def _mix(*parts: int) -> int:
    """One 63-bit seed from several integers (splitmix64-style), so that (seed, epoch) and
    (seed, epoch, step) give unrelated streams; hashing by hand keeps it stable across Python runs."""
    value = 0x9E3779B97F4A7C15
    for part in parts:
        value = (value ^ (int(part) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        value ^= value >> 31
    return value & 0x7FFFFFFFFFFFFFFF


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool, rank: int = 0, world: int = 1) -> torch.Tensor:
    """The sample indices this rank visits in `epoch`: a pure function of its arguments.

    Deriving the order from (seed, epoch) instead of drawing it from a running generator is what
    makes resume exact (no generator state to carry) and what lets every rank of a distributed run
    agree on the permutation without communicating. Like torch's DistributedSampler, the order is
    padded by wrapping around so that every rank gets the same number of samples (ranks must run the
    same number of steps or their collectives would hang), then dealt out rank::world.
    """
    if shuffle:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(_mix(seed, epoch)))
    else:
        order = torch.arange(n)
    if world > 1:
        per_rank = math.ceil(n / world)
        if per_rank * world > n:
            order = torch.cat([order, order[: per_rank * world - n]])
        order = order[rank::world]
    return order


def step_generator(seed: int, epoch: int, step: int) -> torch.Generator:
    """The generator a batch's random augmentation draws from, fixed by (seed, epoch, step) so that a
    run resumed mid-epoch augments the remaining batches exactly as the uninterrupted run did."""
    return torch.Generator().manual_seed(_mix(seed, epoch, step, 1))


class Batches:
    """Iterate (inputs, labels) batches of a TensorSplit: float inputs in [0, 1], optional shuffle,
    optional batched augmentation and channels-last layout.

    `epoch(e, start)` yields epoch e's batches from batch `start` on; its order and augmentation are
    functions of (seed, e, step) only (see `epoch_order`), and `rank`/`world` take this process's
    shard of every epoch in a distributed run. Iterating the object itself gives epoch 0.
    """

    def __init__(
        self,
        split: TensorSplit,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        transform: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
        channels_last: bool = False,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        if batch_size <= 0:
            raise UsageError(f"--batch-size must be positive, got {batch_size}.")
        self.split = split
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.transform = transform
        self.channels_last = channels_last and split.x.ndim == 4
        self.rank, self.world = rank, world

    def samples_per_epoch(self) -> int:
        return math.ceil(len(self.split) / self.world)

    def __len__(self) -> int:
        return math.ceil(self.samples_per_epoch() / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        return self.epoch(0)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, ...]]:
        n = len(self.split)
        device = self.split.x.device
        sequential = not self.shuffle and self.world == 1
        order = None if sequential else epoch_order(n, self.seed, epoch, self.shuffle, self.rank, self.world)
        if order is not None:
            order = order.to(device)
        total = n if order is None else len(order)
        for step in range(start, len(self)):
            begin = step * self.batch_size
            if order is None:
                window = slice(begin, begin + self.batch_size)
                xb, yb = self.split.x[window], self.split.y[window]
                extras = tuple(e[window] for e in self.split.extras)
            else:
                index = order[begin : min(begin + self.batch_size, total)]
                xb, yb = self.split.x[index], self.split.y[index]
                extras = tuple(e[index] for e in self.split.extras)
            yield (self.finish(xb, epoch, step), yb, *extras)

    def finish(self, xb: torch.Tensor, epoch: int, step: int) -> torch.Tensor:
        """Stored values to model inputs: float, scaled to [0, 1], augmented, laid out."""
        xb = xb.float()
        if self.split.scale != 1.0:
            xb = xb.mul_(self.split.scale)
        if self.transform is not None:
            xb = self.transform(xb, step_generator(self.seed, epoch, step))
        if self.channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        return xb
