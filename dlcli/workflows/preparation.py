"""Getting a workflow's data ready: the dataset loaded and announced, the seeded validation carve and
--train-samples subset, and the batch iterators. Train, finetune, distill, prune, eval, quantize and
benchmark all start here, so each of these steps is written once. (The defaults a run resolves, such as
the epoch budget and the channels-last rule, are in dlcli.workflows.resolve.)"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dlcli.config import TrainConfig
from dlcli.console import Console
from dlcli.data.augment import make_augment
from dlcli.data.dataset import Dataset
from dlcli.data.streaming import device_splits, make_batches
from dlcli.data.tensors import Batches, TensorSplit, carve_validation, limit_samples
from dlcli.distributed import current as current_dist
from dlcli.engine.budget import selects_by_validation
from dlcli.errors import UsageError

EVAL_BATCH = 1000
DEFAULT_DATASET = "mnist-sample"  # embedded in the package: `dlcli train` works offline, in seconds


@dataclass
class PreparedData:
    dataset: Dataset
    train: TensorSplit
    val: TensorSplit | None
    test: TensorSplit | None


def load_data(
    spec: str, data_dir: str | None, console: Console, test_only: bool = False, stream: bool | None = None,
) -> Dataset:
    """The dataset, announced on stderr; `test_only` for commands that only evaluate (see
    `load_dataset`)."""
    from dlcli.data.catalog import load_dataset

    dataset = load_dataset(spec, data_dir=data_dir, progress=not console.quiet, test_only=test_only, stream=stream)
    sizes = f"test {len(dataset.test) if dataset.test else 0}"
    if len(dataset.train) or not test_only:
        sizes = f"train {len(dataset.train)}  {sizes}"
    console.info(f"data: {dataset.name}  {sizes}  input {dataset.input_shape}  classes {dataset.num_classes}")
    return dataset


def prepare_data(
    cfg: TrainConfig, device: torch.device, generator: torch.Generator, console: Console,
    dataset: Dataset | None = None,
) -> PreparedData:
    """Load the dataset, carve the seeded validation split and apply --train-samples."""
    dataset = dataset or load_data(cfg.data, cfg.data_dir, console, stream=cfg.stream)
    train, test = device_splits(dataset, device, cfg.workers)  # lazy (large folder) splits stream
    train, val = carve_validation(train, cfg.val_split, generator)
    train = limit_samples(train, cfg.train_samples, generator)
    return PreparedData(dataset, train, val, test)


def train_batches(cfg: TrainConfig, data: PreparedData, channels_last: bool) -> Batches:
    """This rank's training batches: order and augmentation fixed by (seed, epoch, step)."""
    augment = make_augment(cfg.augment) if cfg.augment else None
    if augment is not None and not data.dataset.is_image:
        raise UsageError("--augment applies to image data only.")
    ctx = current_dist()
    return make_batches(data.train, per_rank_batch(cfg.batch_size, ctx.world), shuffle=True, seed=cfg.seed,
                        transform=augment, channels_last=channels_last, rank=ctx.rank, world=ctx.world)


def per_rank_batch(batch_size: int, world: int) -> int:
    """--batch-size is the global batch: each of `world` processes takes its share, so a distributed
    run takes the same number of steps with the same learning rate as one process (as Ultralytics
    does), and its results can be compared with a single-process run's."""
    if batch_size % world:
        raise UsageError(f"--batch-size {batch_size} does not split evenly over {world} processes; "
                         f"use a multiple of {world}.")
    return batch_size // world


def picks_best_epoch(data: PreparedData) -> bool:
    """Whether the validation split is big enough to choose best.pt's epoch by (else the last epoch is
    kept): the loop's rule, and what the run says about it."""
    return data.val is not None and selects_by_validation(len(data.val))


def eval_batches(split: TensorSplit, channels_last: bool) -> Batches:
    return make_batches(split, EVAL_BATCH, channels_last=channels_last)


def split_metrics(model: torch.nn.Module, split: TensorSplit, channels_last: bool) -> dict[str, float]:
    """loss (cross-entropy), accuracy and samples of `model` on an evaluation split: how every
    workflow tests a model, so their figures compare."""
    from dlcli.engine import evaluate
    from dlcli.losses import make_loss

    return evaluate(model, eval_batches(split, channels_last), make_loss("cross-entropy"))
