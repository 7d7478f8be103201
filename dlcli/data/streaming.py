"""Batches of a dataset too large for memory, decoded from disk in DataLoader worker processes.

A streamed split (`StreamSplit`) is the lazy counterpart of `TensorSplit`: the images stay on disk as
`LazyImages`, labels (and extras such as teacher logits) are small and live on the device. Its
batches (`StreamBatches`) are a `Batches` whose samples come from `torch.utils.data.DataLoader`
workers instead of a tensor slice; everything else is inherited, so both paths visit the same
indices in the same order (`epoch_order`), skip batches the same way on resume (`epoch(e, start)`;
skipped batches are never decoded) and augment with the same per-step generators (`Batches.finish`,
run batched in the main process). Workers only decode: they return uint8 (C, H, W) tensors, which is
four times less to pass between processes than float and leaves augmentation on the training device.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from dlcli.data.dataset import Dataset, Split
from dlcli.data.tensors import Batches, TensorSplit, epoch_order, to_tensor_split
from dlcli.errors import InputFileError, UsageError

if TYPE_CHECKING:
    from dlcli.data.folder import LazyImages

MAX_DEFAULT_WORKERS = 2
"""Without --workers, streamed data gets one worker per core beyond the two that training's own
threads keep busy, at most this many. Measured on the 2-core development machine (README, "Data
larger than memory"): 1 and 2 workers trained no faster than decoding in the main process (training
compute dominates, and every core is already in use) while each worker adds about 250 MB of resident
memory, so 2 cores get 0; with spare cores, workers decode while the main process trains."""

PREFETCH_FACTOR = 4
"""Batches each worker decodes ahead; enough to ride out a slow file without holding many batches."""


@dataclass
class StreamSplit:
    """A split whose images stay on disk: `x` decodes on demand; `y` and `extras` are on the device
    that batches go to. `workers` is how many DataLoader processes decode its batches (0: the main
    process); it travels with the split so that every consumer of its batches (training, validation,
    test, a distillation teacher's pass) streams the same way."""

    x: LazyImages
    y: torch.Tensor
    scale: float
    extras: tuple[torch.Tensor, ...] = field(default_factory=tuple)
    workers: int = 0

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def subset(self, index: torch.Tensor) -> StreamSplit:
        """The samples at `index` (validation carving, --train-samples): a narrower list of files."""
        extras = tuple(e[index] for e in self.extras)
        return StreamSplit(self.x.take(index.cpu().numpy()), self.y[index], self.scale, extras, self.workers)

    def with_extra(self, tensor: torch.Tensor) -> StreamSplit:
        return StreamSplit(self.x, self.y, self.scale, (*self.extras, tensor), self.workers)

    def loader(self, batches: list[torch.Tensor]) -> DataLoader:
        """A one-pass DataLoader over exactly `batches` (lists of sample indices), in that order.

        Workers are not persistent: each epoch (and each validation pass) starts them afresh, which
        costs a fork per worker, small next to an epoch of data this size, and frees their memory
        between the training and validation passes."""
        workers = min(self.workers, len(batches))
        return DataLoader(
            _Decoded(self.x), batch_sampler=[b.tolist() for b in batches], num_workers=workers,
            pin_memory=self.y.device.type == "cuda", prefetch_factor=PREFETCH_FACTOR if workers else None,
        )


class _Decoded(TorchDataset):
    """What a DataLoader worker indexes: sample i as a uint8 (C, H, W) tensor (labels stay behind)."""

    def __init__(self, images: LazyImages) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.images.decode(i))


class StreamBatches(Batches):
    """`Batches` over a `StreamSplit`: the same interface, order and augmentation, decoded by workers."""

    split: StreamSplit

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, ...]]:
        order = epoch_order(len(self.split), self.seed, epoch, self.shuffle, self.rank, self.world)
        steps = range(start, len(self))
        rows = [order[step * self.batch_size : (step + 1) * self.batch_size] for step in steps]
        if not rows:
            return
        device = self.split.y.device
        loaded = iter(self.split.loader(rows))
        try:
            with _worker_errors():
                for step, index, xb in zip(steps, rows, loaded, strict=True):
                    index = index.to(device)
                    extras = tuple(e[index] for e in self.split.extras)
                    yield (self.finish(xb.to(device, non_blocking=True), epoch, step), self.split.y[index], *extras)
        finally:
            _stop_workers(loaded)


def _stop_workers(loaded: Iterator[Any]) -> None:
    """Stop a pass's worker processes now, not whenever the garbage collector reaches its iterator.

    Why: after a worker's error (or a pass left early) the iterator stays referenced by the error's
    traceback, and torch shut the workers down only when that was collected: 10 s later (two 5-second
    join timeouts) instead of a few milliseconds now. `_shutdown_workers` is torch's own method for this
    (private, hence looked up); an in-process iterator (no workers) has none. Calling it twice is safe.
    """
    shutdown = getattr(loaded, "_shutdown_workers", None)
    if callable(shutdown):
        shutdown()


@contextmanager
def _worker_errors() -> Iterator[None]:
    """A worker's InputFileError (an unreadable image) reaches the main process with the worker's
    traceback folded into its message; keep the one line that names the file."""
    try:
        yield
    except InputFileError as e:
        lines = [line for line in str(e).splitlines() if line.strip()]
        last = lines[-1] if lines else str(e)
        raise InputFileError(last.split("InputFileError: ", 1)[-1]) from None


def to_device_split(
    split: Split, scale: float, device: torch.device, workers: int | None = None
) -> TensorSplit | StreamSplit:
    """A loaded split ready for batching: streamed when its images are lazy, else a tensor on `device`."""
    if not getattr(split.x, "lazy", False):
        return to_tensor_split(split, scale, device)
    labels = torch.from_numpy(split.y).long().to(device)
    return StreamSplit(split.x, labels, scale, workers=resolve_workers(workers))


def device_splits(
    dataset: Dataset, device: torch.device, workers: int | None = None
) -> tuple[TensorSplit | StreamSplit, TensorSplit | StreamSplit | None]:
    """Train and test splits of a loaded dataset, each in memory or streamed (`to_device_split`)."""
    scale = dataset.input_scale()
    train = to_device_split(dataset.train, scale, device, workers)
    test = to_device_split(dataset.test, scale, device, workers) if dataset.test is not None else None
    return train, test


def make_batches(split: TensorSplit | StreamSplit, batch_size: int, **options: Any) -> Batches:
    """`Batches` for an in-memory split, `StreamBatches` for a streamed one (same options)."""
    kind = StreamBatches if isinstance(split, StreamSplit) else Batches
    return kind(split, batch_size, **options)  # type: ignore[arg-type]


def resolve_workers(workers: int | None) -> int:
    if workers is None:
        return min(MAX_DEFAULT_WORKERS, max(0, (os.cpu_count() or 1) - 2))
    if workers < 0:
        raise UsageError(f"--workers must be 0 or more, got {workers}.")
    return workers
