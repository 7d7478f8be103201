"""THE loop. It knows batches, a task, an optimizer and a schedule; nothing about files, pruning or
quantization. Callers persist checkpoints from `on_epoch_end`."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from dlcli.engine.progress import NullProgress, ProgressSink
from dlcli.engine.tasks import Task
from dlcli.errors import WorkError

# on_epoch_end(summary, improved): called after every epoch with that epoch's metrics.
EpochCallback = Callable[[dict[str, Any], bool], None]


@dataclass
class FitResult:
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_accuracy: float | None = None
    stopped_early: bool = False
    seconds: float = 0.0


def autocast_context(device: torch.device, precision: str) -> Any:
    """Mixed precision only where asked: on this project's CPUs bf16 autocast measured slower."""
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.inference_mode()
def predict(
    model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """All logits and labels of `batches`, with the model in eval mode."""
    model.eval()
    logits, labels = [], []
    for x, y, *_ in batches:
        logits.append(model(x).float())
        labels.append(y)
    return torch.cat(logits), torch.cat(labels)


def evaluate(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> dict[str, float]:
    """Loss and top-1 accuracy over `batches` (eval mode, no gradients)."""
    logits, labels = predict(model, batches)
    return {
        "loss": float(loss_fn(logits, labels)),
        "accuracy": int((logits.argmax(1) == labels).sum()) / max(1, labels.numel()),
        "samples": int(labels.numel()),
    }


def _train_epoch(
    model: nn.Module, task: Task, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    optimizer: torch.optim.Optimizer, scheduler: Any, progress: ProgressSink,
    device: torch.device, precision: str, train_mode: Callable[[nn.Module], None],
) -> dict[str, float]:
    train_mode(model)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    for step, (x, y, *extra) in enumerate(batches, start=1):
        with autocast_context(device, precision):
            loss, logits = task(model, x, y, *extra)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        # Accumulate on the device: a .item() per step would synchronise a GPU every batch.
        loss_sum += loss.detach() * y.numel()
        correct += (logits.detach().argmax(1) == y).sum()
        seen += y.numel()
        if progress.wants_update(step):
            current = float(loss.detach())
            if not math.isfinite(current):
                raise WorkError(f"training diverged (loss is {current}) at step {step}; try a lower --lr.")
            progress.update(step, current)
    if seen == 0:
        raise WorkError("no training batches: the training split is empty.")
    mean_loss = float(loss_sum) / seen
    if not math.isfinite(mean_loss):
        raise WorkError(f"training diverged (loss is {mean_loss}); try a lower --lr.")
    return {"train_loss": mean_loss, "train_accuracy": float(correct) / seen}


def fit(
    model: nn.Module,
    task: Task,
    train_batches: Any,
    val_batches: Any | None,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    epochs: int,
    *,
    device: torch.device,
    eval_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    patience: int | None = None,
    precision: str = "fp32",
    progress: ProgressSink | None = None,
    on_epoch_start: Callable[[int], None] | None = None,
    on_epoch_end: EpochCallback | None = None,
    train_mode: Callable[[nn.Module], None] | None = None,
) -> FitResult:
    """Train for `epochs`, validating after each; the best epoch is the one with the highest
    validation accuracy (the last one when there is no validation split). Stops early after
    `patience` epochs without improvement.

    Batches may carry extra per-sample tensors after (x, y) (e.g. cached teacher logits); they are
    passed on to the task. `train_mode` puts the model in training mode each epoch (finetune uses it
    to keep frozen BatchNorm layers in eval mode).
    """
    progress = progress or NullProgress()
    train_mode = train_mode or (lambda m: m.train())
    result = FitResult()
    start = time.perf_counter()
    stale = 0
    for epoch in range(1, epochs + 1):
        if on_epoch_start is not None:
            on_epoch_start(epoch)
        epoch_start = time.perf_counter()
        progress.epoch_start(epoch, epochs, len(train_batches))
        summary: dict[str, Any] = {"epoch": epoch}
        summary.update(_train_epoch(
            model, task, _epoch_batches(train_batches, epoch - 1), optimizer, scheduler, progress, device, precision, train_mode
        ))
        if val_batches is not None:
            val = evaluate(model, val_batches, eval_loss)
            summary.update({"val_loss": val["loss"], "val_accuracy": val["accuracy"]})
        summary["lr"] = optimizer.param_groups[0]["lr"]
        summary["seconds"] = round(time.perf_counter() - epoch_start, 3)
        improved = _improved(summary, result)
        if improved:
            result.best_epoch, result.best_val_accuracy = epoch, summary.get("val_accuracy")
            stale = 0
        else:
            stale += 1
        result.history.append(summary)
        progress.epoch_end(summary, improved)
        if on_epoch_end is not None:
            on_epoch_end(summary, improved)
        if patience is not None and stale >= patience and epoch < epochs:
            result.stopped_early = True
            progress.message(f"early stopping: no validation improvement for {patience} epochs")
            break
    result.seconds = time.perf_counter() - start
    progress.close()
    return result


def _epoch_batches(batches: Any, epoch: int) -> Iterable[tuple[torch.Tensor, ...]]:
    """Batches.epoch(e) when the source orders by epoch; any other iterable as it is."""
    return batches.epoch(epoch) if hasattr(batches, "epoch") else batches


def _improved(summary: dict[str, Any], result: FitResult) -> bool:
    if "val_accuracy" not in summary:
        return True  # without validation the latest weights are the best we know
    return result.best_val_accuracy is None or summary["val_accuracy"] > result.best_val_accuracy
