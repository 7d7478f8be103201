"""THE loop. It knows batches, a task, an optimizer and a schedule; nothing about files, pruning or
quantization. What happens around it (writing checkpoints, logging, stopping on a signal) is the
business of `Callbacks`, which the workflows implement.

The loop is a `Trainer` over a `TrainerState` (dlcli.engine.state) rather than a function with many
arguments, because the state is what a resumable checkpoint saves and what a resumed run starts
from: `Trainer(...).fit()` continues from whatever `state` says, at an epoch boundary or mid-epoch.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from dlcli.engine.budget import total_steps
from dlcli.engine.progress import NullProgress, ProgressSink
from dlcli.engine.state import TrainerState
from dlcli.engine.tasks import Task
from dlcli.errors import WorkError

# on_epoch_end(summary, improved): called after every epoch with that epoch's metrics.
EpochCallback = Callable[[dict[str, Any], bool], None]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class StopTraining(Exception):
    """Raised by the loop after `Callbacks.checkpoint` saved the state because a stop was requested
    (SIGTERM, SIGINT); `signum` is the signal that asked for it."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by signal {signum}")
        self.signum = signum


class Callbacks:
    """What a workflow does around the loop; every method is a no-op here.

    `stop_requested` is polled at every step boundary and must give the same answer on every rank
    of a distributed run (the workflow reduces it), so that all ranks stop at the same step.
    """

    def epoch_start(self, trainer: Trainer, epoch: int) -> None: ...

    def epoch_end(self, trainer: Trainer, summary: dict[str, Any], improved: bool) -> None: ...

    def checkpoint(self, trainer: Trainer) -> None:
        """Save a resumable snapshot mid-epoch (`--save-every`, or before stopping on a signal)."""

    def stop_requested(self) -> int | None:
        """The signal number when the run should stop at this step boundary, else None."""
        return None


@dataclass
class FitResult:
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_accuracy: float | None = None
    stopped_early: bool = False
    seconds: float = 0.0
    skipped_batches: int = 0


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
    loss_fn: LossFn,
) -> dict[str, float]:
    """Loss and top-1 accuracy over `batches` (eval mode, no gradients)."""
    logits, labels = predict(model, batches)
    return {
        "loss": float(loss_fn(logits, labels)),
        "accuracy": int((logits.argmax(1) == labels).sum()) / max(1, labels.numel()),
        "samples": int(labels.numel()),
    }


@dataclass
class LoopOptions:
    """How long and how carefully to train; the `what` is in the Trainer's other fields."""

    epochs: float
    """Fractional epochs end the last one early: 1.5 trains one full epoch and half of a second."""
    patience: int | None = None
    precision: str = "fp32"
    save_every: int | None = None
    """Call `Callbacks.checkpoint` every this many optimizer steps."""
    skip_nonfinite: bool = False
    """Skip (and count) batches whose loss is NaN or infinite instead of stopping the run."""
    select_best: bool = True
    """Pick the best epoch by validation accuracy; False keeps the last epoch (a validation split too
    small to trust: dlcli.engine.budget.selects_by_validation)."""


@dataclass
class Trainer:
    """The one training loop, resumable at any step boundary.

    `model` is what the task calls (a DistributedDataParallel wrapper in a distributed run);
    `reduce` sums a tensor across ranks (identity in one process). `train_mode` puts the model in
    training mode each epoch (finetune uses it to keep frozen BatchNorm layers in eval mode).
    """

    model: nn.Module
    task: Task
    train_batches: Any
    val_batches: Any | None
    optimizer: torch.optim.Optimizer
    scheduler: Any
    device: torch.device
    eval_loss: LossFn
    options: LoopOptions
    eval_model: nn.Module | None = None
    scaler: Any = None
    progress: ProgressSink = field(default_factory=NullProgress)
    callbacks: Callbacks = field(default_factory=Callbacks)
    train_mode: Callable[[nn.Module], None] = nn.Module.train
    reduce: Callable[[torch.Tensor], torch.Tensor] = lambda t: t
    state: TrainerState = field(default_factory=TrainerState)

    def fit(self) -> FitResult:
        """Train from `state` until the run's `total_steps`, validating after each epoch; the best epoch is
        the one with the highest validation accuracy (the last one without validation). Stops early
        after `patience` epochs without improvement, and raises StopTraining when a stop is requested.

        Progress is counted in optimizer steps, so a fractional run (`epochs=1.5`) ends its last epoch
        early, and a fractional run resumed with more epochs continues with the next epoch's data for
        exactly the steps its schedule was planned for."""
        start = time.perf_counter()
        s = self.state
        s.steps_per_epoch = len(self.train_batches)  # saved, so a resume can count epochs done before loading data
        self._last_epoch = s.epoch + math.ceil(max(0, self.planned_steps - s.global_step + s.step) / s.steps_per_epoch)
        try:
            epoch = s.epoch
            while self.more_to_do:
                epoch += 1
                if self._run_epoch(epoch):
                    break
        finally:
            self.progress.close()
        return FitResult(list(s.history), s.best_epoch, s.best_val_accuracy, s.stopped_early,
                         time.perf_counter() - start, s.skipped_batches)

    @property
    def planned_steps(self) -> int:
        """Optimizer steps the whole run takes (fractional epochs included)."""
        return total_steps(self.options.epochs, len(self.train_batches))

    @property
    def more_to_do(self) -> bool:
        return self.state.global_step < self.planned_steps

    def _run_epoch(self, epoch: int) -> bool:
        """One epoch (or its remainder after a mid-epoch resume); True when training should end."""
        self.callbacks.epoch_start(self, epoch)
        epoch_start = time.perf_counter()
        last = self._last_step()
        self.progress.epoch_start(epoch, self._last_epoch, last)
        summary: dict[str, Any] = {"epoch": epoch, **self._train_epoch(epoch, last)}
        if self.val_batches is not None:
            val = evaluate(self.eval_model or self.model, self.val_batches, self.eval_loss)
            summary.update({"val_loss": val["loss"], "val_accuracy": val["accuracy"]})
        summary["lr"] = self.optimizer.param_groups[0]["lr"]
        summary["seconds"] = round(time.perf_counter() - epoch_start, 3)
        improved = self._record(summary)
        # The progress line's mark means "best by validation so far"; when the last epoch is kept
        # (select_best off), every epoch replaces best.pt and a mark on each would mislead.
        self.progress.epoch_end(summary, improved and self.options.select_best)
        self.callbacks.epoch_end(self, summary, improved)
        signum = self.callbacks.stop_requested()
        if signum is not None and self.more_to_do:
            raise StopTraining(signum)  # epoch_end has just saved everything a resume needs
        patience = self.options.patience
        if patience is not None and self.state.stale_epochs >= patience and self.more_to_do:
            self.state.stopped_early = True
            self.progress.message(f"early stopping: no validation improvement for {patience} epochs")
            return True
        return False

    def _record(self, summary: dict[str, Any]) -> bool:
        """Close the epoch in the state; True when it is the best so far."""
        s = self.state
        improved = not self.options.select_best or "val_accuracy" not in summary or (
            s.best_val_accuracy is None or summary["val_accuracy"] > s.best_val_accuracy)
        if improved:
            s.best_epoch, s.best_val_accuracy, s.stale_epochs = summary["epoch"], summary.get("val_accuracy"), 0
        else:
            s.stale_epochs += 1
        s.epoch, s.step, s.partial = summary["epoch"], 0, {}
        s.history.append(summary)
        return improved

    def _sums(self) -> dict[str, torch.Tensor]:
        """The epoch's running sums, kept on the device (a .item() per step would synchronise a GPU)."""
        saved = self.state.partial
        return {
            "loss_sum": saved.get("loss_sum", torch.zeros((), dtype=torch.float32)).to(self.device),
            "correct": saved.get("correct", torch.zeros((), dtype=torch.long)).to(self.device),
            "seen": saved.get("seen", torch.zeros((), dtype=torch.long)).to(self.device),
        }

    def _last_step(self) -> int:
        """The step the epoch under way ends at: all its batches, fewer when the run's steps end first."""
        return min(len(self.train_batches), self.state.step + self.planned_steps - self.state.global_step)

    def _train_epoch(self, epoch: int, last: int) -> dict[str, float]:
        self.train_mode(self.model)
        sums = self._sums()
        first = self.state.step
        batches = itertools.islice(self.train_batches.epoch(epoch - 1, first), last - first)
        for step, (x, y, *extra) in enumerate(batches, start=first + 1):
            loss, logits = self._train_step(x, y, extra)
            if loss is not None:
                sums["loss_sum"] += loss.detach().float() * y.numel()
                sums["correct"] += (logits.detach().argmax(1) == y).sum()
                sums["seen"] += y.numel()
            self.state.step, self.state.global_step = step, self.state.global_step + 1
            self.state.partial = sums
            if loss is not None and self.progress.wants_update(step):
                self._check_finite(float(loss.detach()), step)
                self.progress.update(step, float(loss.detach()))
            self._maybe_checkpoint(step, last)
        totals = {k: self.reduce(v.clone()) for k, v in sums.items()}
        seen = int(totals["seen"])
        if seen == 0:
            raise WorkError("no training batches: the training split is empty.")
        mean_loss = float(totals["loss_sum"]) / seen
        self._check_finite(mean_loss)
        return {"train_loss": mean_loss, "train_accuracy": float(totals["correct"]) / seen}

    def _train_step(self, x: torch.Tensor, y: torch.Tensor, extra: list[torch.Tensor]) -> tuple[Any, Any]:
        """Forward, backward and update; (None, None) when a non-finite batch was skipped."""
        with autocast_context(self.device, self.options.precision):
            loss, logits = self.task(self.model, x, y, *extra)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()
        if self.options.skip_nonfinite and not self._all_finite(loss):
            # Every rank did its backward (DDP's collectives must match); all drop the update.
            self.optimizer.zero_grad(set_to_none=True)
            self.state.skipped_batches += 1
            self._step_scheduler()
            return None, None
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self._step_scheduler()
        return loss, logits

    def _step_scheduler(self) -> None:
        # A skipped batch still advances the schedule, so the run's length in the schedule stays fixed.
        if self.scheduler is not None:
            self.scheduler.step()

    def _all_finite(self, loss: torch.Tensor) -> bool:
        bad = (~torch.isfinite(loss.detach())).to(torch.long).reshape(1)
        return int(self.reduce(bad)) == 0

    def _maybe_checkpoint(self, step: int, last: int) -> None:
        """Mid-epoch saves; the epoch's last step is saved by epoch_end instead."""
        every = self.options.save_every
        if every and self.state.global_step % every == 0 and step < last:
            self.callbacks.checkpoint(self)
        signum = self.callbacks.stop_requested()
        if signum is not None and step < last:
            self.callbacks.checkpoint(self)
            raise StopTraining(signum)

    def _check_finite(self, value: float, step: int | None = None) -> None:
        if math.isfinite(value):
            return
        where = f" at step {step}" if step is not None else ""
        raise WorkError(f"training diverged (loss is {value}){where}; try a lower --lr, or --skip-nonfinite "
                        "to skip such batches.")
