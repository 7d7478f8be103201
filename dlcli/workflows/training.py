"""What train, finetune and distill share around the one loop: data preparation, optimizer and
schedule set-up, per-epoch checkpointing, Ctrl-C handling, final test evaluation and the curves."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dlcli.checkpoint import Checkpoint, atomic_write, save_checkpoint
from dlcli.config import TrainConfig, dump_yaml
from dlcli.console import Console
from dlcli.data.augment import make_augment
from dlcli.data.dataset import Dataset
from dlcli.data.streaming import device_splits, make_batches
from dlcli.data.tensors import Batches, TensorSplit, carve_validation, limit_samples
from dlcli.device import prefers_channels_last
from dlcli.engine import FitResult, Task, evaluate, fit
from dlcli.engine.progress import make_progress
from dlcli.errors import UsageError
from dlcli.losses import make_loss
from dlcli.optim import make_optimizer, make_scheduler, parameter_groups

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


def recommended_epochs(spec: str) -> int:
    from dlcli.data.catalog import DATASETS

    name = spec.lower()
    return DATASETS.get(name).default_epochs if name in DATASETS else 10


def use_channels_last(cfg: TrainConfig, device: torch.device, dataset: Dataset) -> bool:
    """--channels-last if given, else the device's preference."""
    if cfg.channels_last is not None:
        return cfg.channels_last
    return prefers_channels_last(device, dataset.input_shape)


def train_batches(cfg: TrainConfig, data: PreparedData, generator: torch.Generator, channels_last: bool) -> Batches:
    augment = make_augment(cfg.augment) if cfg.augment else None
    if augment is not None and not data.dataset.is_image:
        raise UsageError("--augment applies to image data only.")
    return make_batches(data.train, cfg.batch_size, shuffle=True, seed=cfg.seed, transform=augment,
                        channels_last=channels_last)


def eval_batches(split: TensorSplit, channels_last: bool) -> Batches:
    return make_batches(split, EVAL_BATCH, channels_last=channels_last)


def build_optimizer(
    cfg: TrainConfig, model: nn.Module, steps_per_epoch: int, epochs: int,
    groups: list[dict[str, Any]] | None = None,
) -> tuple[torch.optim.Optimizer, Any]:
    groups = groups or parameter_groups(model.named_parameters(), cfg.weight_decay)
    optimizer = make_optimizer(cfg.optimizer, groups, cfg.lr, cfg.momentum, cfg.nesterov)
    warmup = None if cfg.warmup_epochs is None else int(cfg.warmup_epochs * steps_per_epoch)
    scheduler = make_scheduler(cfg.scheduler, optimizer, steps_per_epoch * epochs, steps_per_epoch,
                               warmup, cfg.step_size, cfg.gamma)
    return optimizer, scheduler


@dataclass
class TrainOutcome:
    fit: FitResult
    test_metrics: dict[str, float]
    best_path: Path
    last_path: Path


class RunWriter:
    """Persists a run as it goes: last.pt every epoch, best.pt on improvement, metrics.jsonl lines.

    `make_checkpoint(metrics)` is supplied by the command, so it decides what the artifact records
    (lineage, parent) while this class decides when and where it is written.
    """

    def __init__(self, out_dir: Path, make_checkpoint: Callable[[dict[str, Any]], Checkpoint]) -> None:
        self.out_dir = out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        self.make_checkpoint = make_checkpoint
        self.best_path = out_dir / "best.pt"
        self.last_path = out_dir / "last.pt"
        self.metrics_path = out_dir / "metrics.jsonl"
        self.metrics_path.unlink(missing_ok=True)  # a reused --force folder must not mix two runs' epochs

    def write_config(self, values: dict[str, Any]) -> None:
        text = dump_yaml(values)
        atomic_write(self.out_dir / "config.yaml", lambda tmp: Path(tmp).write_text(text))

    def on_epoch_end(self, summary: dict[str, Any], improved: bool) -> None:
        with self.metrics_path.open("a") as f:
            f.write(json.dumps(summary) + "\n")
        ckpt = self.make_checkpoint(_checkpoint_metrics(summary))
        save_checkpoint(ckpt, self.last_path)
        if improved:
            save_checkpoint(ckpt, self.best_path)


def _checkpoint_metrics(summary: dict[str, Any]) -> dict[str, Any]:
    keep = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy")
    return {k: summary[k] for k in keep if k in summary}


def run_fit(
    cfg: TrainConfig, model: nn.Module, task: Task, data: PreparedData, epochs: int,
    writer: RunWriter, console: Console, device: torch.device, generator: torch.Generator,
    optimizer_groups: list[dict[str, Any]] | None = None,
    on_epoch_start: Callable[[int], None] | None = None,
    train_mode: Callable[[nn.Module], None] | None = None,
) -> TrainOutcome:
    """Train with the one loop, saving as we go; then test the best checkpoint and plot the curves.

    On Ctrl-C the current weights are saved to last.pt before the interrupt propagates (exit 130).
    """
    channels_last = use_channels_last(cfg, device, data.dataset)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    batches = train_batches(cfg, data, generator, channels_last)
    optimizer, scheduler = build_optimizer(cfg, model, len(batches), epochs, optimizer_groups)
    eval_loss = make_loss("cross-entropy")
    val = eval_batches(data.val, channels_last) if data.val is not None else None
    try:
        result = fit(
            model, task, batches, val, optimizer, scheduler, epochs, device=device, eval_loss=eval_loss,
            patience=cfg.patience, precision=cfg.precision, progress=make_progress(console),
            on_epoch_start=on_epoch_start, on_epoch_end=writer.on_epoch_end, train_mode=train_mode,
        )
    except KeyboardInterrupt:
        save_checkpoint(writer.make_checkpoint({"interrupted": True}), writer.last_path)
        console.warn(f"interrupted: current weights saved to {writer.last_path}")
        raise
    test_metrics = finish_run(writer, data, channels_last, device, eval_loss, result)
    plot_curves(result.history, writer.out_dir / "curves.png")
    return TrainOutcome(result, test_metrics, writer.best_path, writer.last_path)


def finish_run(
    writer: RunWriter, data: PreparedData, channels_last: bool, device: torch.device,
    eval_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], result: FitResult,
) -> dict[str, float]:
    """Evaluate best.pt on the test split and store those metrics in best.pt itself."""
    from dlcli.checkpoint import load_checkpoint

    best = load_checkpoint(writer.best_path)
    if data.test is None:
        return {}
    model = best.build_model().to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    test = evaluate(model, eval_batches(data.test, channels_last), eval_loss)
    best.metrics.update({"test_accuracy": test["accuracy"], "test_loss": test["loss"]})
    save_checkpoint(best, writer.best_path)
    return {"accuracy": test["accuracy"], "loss": test["loss"], "test_samples": test["samples"]}


def plot_curves(history: list[dict[str, Any]], path: Path) -> Path | None:
    """Loss and accuracy per epoch as a PNG (matplotlib, headless)."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train")
    ax_acc.plot(epochs, [h["train_accuracy"] for h in history], marker="o", label="train")
    if "val_loss" in history[0]:
        ax_loss.plot(epochs, [h["val_loss"] for h in history], marker="o", label="validation")
        ax_acc.plot(epochs, [h["val_accuracy"] for h in history], marker="o", label="validation")
    for ax, title in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
    return path


def checkpoint_factory(
    model: nn.Module, model_name: str, args: dict[str, Any], cfg: TrainConfig, dataset: Dataset,
    lineage: list[dict[str, Any]], extra: dict[str, Any] | None = None,
) -> Callable[[dict[str, Any]], Checkpoint]:
    """Return make_checkpoint(metrics) for RunWriter: a snapshot of the model's current weights."""

    def make(metrics: dict[str, Any]) -> Checkpoint:
        return Checkpoint(
            model_name=model_name, model_args=args, state_dict=model.state_dict(), classes=dataset.classes,
            input_shape=dataset.input_shape, mean=dataset.mean, std=dataset.std, dataset=cfg.data,
            metrics=metrics, config=cfg.to_dict(), lineage=lineage, extra=dict(extra or {}),
        )

    return make


@dataclass
class TrainingJob:
    """Everything `train_and_save` needs beyond the config: what to train, how, and what to record."""

    command: str
    model: nn.Module
    model_name: str
    model_args: dict[str, Any]
    task: Task
    lineage: list[dict[str, Any]]
    optimizer_groups: list[dict[str, Any]] | None = None
    on_epoch_start: Callable[[int], None] | None = None
    train_mode: Callable[[nn.Module], None] | None = None
    extra: dict[str, Any] | None = None
    remember: bool = True
    """Record best.pt as the latest run (off for side runs such as distill's baseline)."""


def train_and_save(
    cfg: TrainConfig, job: TrainingJob, data: PreparedData, out_dir: Path, console: Console,
    device: torch.device, generator: torch.Generator, start: float,
) -> dict[str, Any]:
    """Run the job with the one loop, write the run folder, and return the command's result."""
    from dlcli.console import result
    from dlcli.models import count_parameters
    from dlcli.runs import record_latest

    epochs = cfg.epochs or recommended_epochs(cfg.data)
    cfg.epochs = epochs
    console.info(f"model: {job.model_name} {job.model_args}  parameters {count_parameters(job.model):,}")
    console.info(f"training {epochs} epochs on {len(data.train)} samples, validating on "
                 f"{len(data.val) if data.val else 0}; writing to {out_dir}")
    writer = RunWriter(out_dir, checkpoint_factory(
        job.model, job.model_name, job.model_args, cfg, data.dataset, job.lineage, job.extra))
    writer.write_config(cfg.to_dict())
    outcome = run_fit(cfg, job.model, job.task, data, epochs, writer, console, device, generator,
                      job.optimizer_groups, job.on_epoch_start, job.train_mode)
    if job.remember:
        record_latest(outcome.best_path)
    metrics = {
        **outcome.test_metrics,
        "val_accuracy": outcome.fit.best_val_accuracy,
        "best_epoch": outcome.fit.best_epoch,
        "epochs": len(outcome.fit.history),
        "params": count_parameters(job.model),
        "train_seconds": round(outcome.fit.seconds, 3),
    }
    if "accuracy" in metrics:
        console.info(f"test accuracy {metrics['accuracy']:.2%}  loss {metrics['loss']:.4f}  "
                     f"(best epoch {outcome.fit.best_epoch})")
    return result(job.command, str(outcome.best_path), metrics, str(device), time.perf_counter() - start,
                  run_dir=str(out_dir), stopped_early=outcome.fit.stopped_early)
