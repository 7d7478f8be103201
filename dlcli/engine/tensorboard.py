"""`--tensorboard`: the run's scalars, hyperparameters and model graph as TensorBoard event files.

Written with torch's own `SummaryWriter` as a `ProgressSink` that tees to the console progress, so the
loop gains no second reporting path: it already tells its sink the step, the loss and each epoch's
summary. Per step (every `STEP_EVERY` steps): loss, learning rate and samples/s. Per epoch: train and
validation loss and accuracy, learning rate and samples/s. Accuracy is per epoch only: the loop
counts correct predictions on the device and reads them once an epoch, so that a GPU is not
synchronised on every batch for the sake of a log line.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dlcli.config import require_tensorboard
from dlcli.engine.progress import ProgressSink

STEP_EVERY = 10
"""Steps between per-step scalars: enough points for a curve, few enough syncs not to slow training."""

class TensorBoardSink(ProgressSink):
    """Writes every event to TensorBoard and passes every call on to `inner` (the console progress).

    `lr()` reads the optimizer's current learning rate; `samples_per_epoch` and `batch_size` turn steps
    into samples/s. Hyperparameters go in through the HParams plugin at the start, linked to the
    epoch scalars, so TensorBoard's HPARAMS tab compares the runs of a sweep.
    """

    def __init__(
        self, inner: ProgressSink, log_dir: Path, hparams: dict[str, Any], lr: Callable[[], float],
        batch_size: int, samples_per_epoch: int, every: int,
    ) -> None:
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        self.inner, self.lr, self.batch_size, self.every = inner, lr, batch_size, every
        self.samples_per_epoch = samples_per_epoch
        self.writer = SummaryWriter(log_dir=str(log_dir))
        metrics = dict.fromkeys(("epoch/val_accuracy", "epoch/val_loss", "epoch/train_accuracy", "epoch/train_loss"),
                                0.0)
        experiment, self._session_start, self._session_end = hparams_summary(scalar_hparams(hparams), metrics)
        self.writer.file_writer.add_summary(experiment)
        self.writer.file_writer.add_summary(self._session_start)
        self._steps = 0
        self._epoch = 0
        self._inner_wants = False
        self._mark = (0, time.perf_counter())  # (global step, time) of the last per-step point

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None:
        self._epoch, self._steps = epoch, steps
        self._mark = (self._global(0), time.perf_counter())
        self.inner.epoch_start(epoch, epochs, steps)

    def wants_update(self, step: int) -> bool:
        self._inner_wants = self.inner.wants_update(step)
        return self._inner_wants or step % self.every == 0

    def update(self, step: int, loss: float) -> None:
        if self._inner_wants:
            self.inner.update(step, loss)
        if step % self.every:
            return
        now, global_step = time.perf_counter(), self._global(step)
        last_step, last_time = self._mark
        self.writer.add_scalar("step/loss", loss, global_step)
        self.writer.add_scalar("step/lr", self.lr(), global_step)
        if global_step > last_step and now > last_time:
            rate = (global_step - last_step) * self.batch_size / (now - last_time)
            self.writer.add_scalar("step/samples_per_s", rate, global_step)
        self._mark = (global_step, now)

    def epoch_end(self, summary: dict[str, Any], improved: bool) -> None:
        epoch = summary["epoch"]
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr"):
            if key in summary:
                self.writer.add_scalar(f"epoch/{key}", summary[key], epoch)
        if summary.get("seconds"):
            # Includes the validation pass: the epoch's wall time as the loop measures it.
            self.writer.add_scalar("epoch/samples_per_s", self.samples_per_epoch / summary["seconds"], epoch)
        self.writer.flush()
        self.inner.epoch_end(summary, improved)

    def message(self, text: str) -> None:
        self.inner.message(text)

    def close(self) -> None:
        self.writer.file_writer.add_summary(self._session_end)
        self.writer.close()
        self.inner.close()

    def _global(self, step: int) -> int:
        return (self._epoch - 1) * self._steps + step


def scalar_hparams(values: dict[str, Any]) -> dict[str, Any]:
    """The HParams plugin takes numbers, strings and booleans: lists and dicts become their text,
    None becomes "none" (so "not set" is still a comparable value across a sweep)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(scalar_hparams({f"{key}.{k}": v for k, v in value.items()}))
        elif isinstance(value, (bool, int, float, str)):
            out[key] = value
        else:
            out[key] = "none" if value is None else str(value)
    return out


def add_graph(writer: Any, model: nn.Module, example: torch.Tensor) -> str | None:
    """Trace `model` on one example into the event file; a model that does not trace cleanly is
    skipped with the reason (returned) rather than failing the run. Traced in eval mode without
    gradients so that tracing changes no BatchNorm statistics and draws no dropout randomness."""
    was_training = model.training
    model.eval()
    try:
        # torch.jit.trace, which add_graph uses, warns that it is deprecated; that is torch's concern, not the user's.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            writer.add_graph(model, example)
        return None
    except Exception as exc:  # tracing raises many kinds (TracingCheckError, RuntimeError, ...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"tensorboard: model graph skipped (it does not trace cleanly: {first[:160]})"
    finally:
        model.train(was_training)


def tensorboard_progress(
    inner: ProgressSink, log_dir: Path, cfg: Any, model: nn.Module, optimizer: torch.optim.Optimizer,
    example: torch.Tensor, samples_per_epoch: int, console: Any,
) -> TensorBoardSink:
    """The sink for a run with --tensorboard: hyperparameters from the resolved config, the graph
    traced on one training example, the learning rate read from the optimizer."""
    require_tensorboard()
    sink = TensorBoardSink(inner, log_dir, cfg.to_dict(), lambda: optimizer.param_groups[0]["lr"],
                           cfg.batch_size, samples_per_epoch, STEP_EVERY)
    note = add_graph(sink.writer, model, example)
    if note:
        console.info(note)
    console.info(f"tensorboard: writing to {log_dir} (view with: tensorboard --logdir {log_dir.parent})")
    return sink
