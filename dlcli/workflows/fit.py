"""The one loop set up for a training command: optimizer and schedule (resumable), gradient scaler,
channels-last, TensorBoard, Ctrl-C/SIGTERM handling, and the best checkpoint's test evaluation.
`run_fit` is what train, finetune, distill and prune's recovery all call."""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dlcli.checkpoint import save_checkpoint
from dlcli.config import TrainConfig
from dlcli.console import Console
from dlcli.distributed import current as current_dist
from dlcli.distributed import wrap_model
from dlcli.engine import FitResult, LoopOptions, StopTraining, Task, Trainer, TrainerState
from dlcli.engine.budget import total_steps
from dlcli.engine.progress import NullProgress, make_progress
from dlcli.engine.state import restore_rng
from dlcli.errors import Interrupted
from dlcli.losses import make_loss
from dlcli.optim import make_optimizer, make_scheduler, parameter_groups
from dlcli.plot_process import draw_curves
from dlcli.workflows.preparation import PreparedData, eval_batches, picks_best_epoch, split_metrics, train_batches
from dlcli.workflows.resolve import channels_last_rule
from dlcli.workflows.run_writer import RunWriter


def build_optimizer(
    cfg: TrainConfig, model: nn.Module, steps_per_epoch: int, epochs: float,
    groups: list[dict[str, Any]] | None = None, resume: dict[str, Any] | None = None,
) -> tuple[torch.optim.Optimizer, Any]:
    """The optimizer and its per-step schedule; with `resume` (a checkpoint's training state), the
    optimizer's saved state and the schedule advanced to the saved step.

    The schedule is rebuilt for this run's total length and stepped forward rather than loaded, so
    that `--epochs` raised on resume re-plans it (one-cycle is defined over the total: the extended
    run continues on the longer cycle from the step reached) and an unchanged run gets exactly the
    learning rates the uninterrupted run had.
    """
    groups = groups or parameter_groups(model.named_parameters(), cfg.weight_decay)
    optimizer = make_optimizer(cfg.optimizer, groups, cfg.lr, cfg.momentum, cfg.nesterov)
    warmup = None if cfg.warmup_epochs is None else int(cfg.warmup_epochs * steps_per_epoch)
    # The schedule reads its peak from the optimizer's fresh learning rates: build it before the
    # saved state (whose rates are mid-schedule) is loaded.
    scheduler = make_scheduler(cfg.scheduler, optimizer, total_steps(epochs, steps_per_epoch), steps_per_epoch,
                               warmup, cfg.step_size, cfg.gamma)
    if resume is not None:
        optimizer.load_state_dict(resume["optimizer"])
        if scheduler is not None:
            fast_forward(scheduler, int(resume["trainer"]["global_step"]))
    return optimizer, scheduler


def fast_forward(scheduler: Any, steps: int) -> None:
    import warnings

    with warnings.catch_warnings():  # "scheduler.step() before optimizer.step()": intended here
        warnings.simplefilter("ignore")
        for _ in range(steps):
            scheduler.step()


@dataclass
class TrainOutcome:
    fit: FitResult
    test_metrics: dict[str, float]
    best_path: Path
    last_path: Path


@dataclass
class FitSetup:
    """What a training command hands the one loop beyond the config, data and RunWriter."""

    model: nn.Module
    task: Task
    optimizer_groups: list[dict[str, Any]] | None = None
    train_mode: Callable[[nn.Module], None] | None = None
    resume: dict[str, Any] | None = None
    """A checkpoint's training state to continue from (its weights are already in `model`)."""


def run_fit(
    cfg: TrainConfig, setup: FitSetup, data: PreparedData, epochs: float, writer: RunWriter, console: Console,
    device: torch.device,
) -> TrainOutcome:
    """Train with the one loop, saving as we go; then test the best checkpoint and plot the curves.

    SIGTERM and the first Ctrl-C stop the run at the next step boundary after saving last.pt
    (StopTraining, exit 143 / 130); `--resume` continues from it.
    """
    ctx = current_dist()
    channels_last = channels_last_rule(cfg, device, data.dataset.input_shape)
    model = setup.model.to(memory_format=torch.channels_last) if channels_last else setup.model
    batches = train_batches(cfg, data, channels_last)
    optimizer, scheduler = build_optimizer(cfg, model, len(batches), epochs, setup.optimizer_groups, setup.resume)
    eval_loss = make_loss("cross-entropy")
    progress = make_progress(console) if ctx.is_main else NullProgress()
    if cfg.tensorboard and ctx.is_main:
        from dlcli.engine.tensorboard import tensorboard_progress

        example = next(iter(batches.epoch(0)))[0][:1]
        progress = tensorboard_progress(progress, writer.out_dir / "tensorboard", cfg, model, optimizer, example,
                                        batches.samples_per_epoch() * ctx.world, console)
    trainer = Trainer(
        model=wrap_model(model, device, cfg.sync_bn), task=setup.task, train_batches=batches,
        val_batches=eval_batches(data.val, channels_last) if data.val is not None else None,
        optimizer=optimizer, scheduler=scheduler, device=device, eval_loss=eval_loss,
        options=LoopOptions(epochs, cfg.patience, cfg.precision, cfg.save_every, cfg.skip_nonfinite,
                            select_best=picks_best_epoch(data)),
        eval_model=model, scaler=make_scaler(cfg.precision, device, setup.resume),
        progress=progress,
        callbacks=writer,
        train_mode=setup.train_mode or nn.Module.train, reduce=ctx.reduce_sum,
    )
    if setup.resume is not None:
        trainer.state = TrainerState.from_dict(setup.resume["trainer"])
        restore_rng(setup.resume["rng"])
    try:
        result = trainer.fit()
    except StopTraining as stop:
        ctx.barrier()  # every rank leaves after rank 0 has saved, so none is torn down mid-save
        raise stopped(stop.signum, trainer, writer.last_path) from None
    if result.skipped_batches:
        console.warn(f"skipped {result.skipped_batches} batch(es) with a non-finite loss (--skip-nonfinite)")
    ctx.barrier()  # best.pt is complete before any rank reads it
    if not ctx.is_main:
        return TrainOutcome(result, {}, writer.best_path, writer.last_path)
    test_metrics = finish_run(writer, data, channels_last, device)
    # After the test, not during it: a helper drawing beside the two-thread test evaluation slowed both
    # (0.6-0.8 s together, against about 0.25 + 0.2 s one after the other).
    draw_curves(result.history, writer.out_dir / "curves.png")
    return TrainOutcome(result, test_metrics, writer.best_path, writer.last_path)


def stopped(signum: int, trainer: Trainer, last: Path) -> Interrupted:
    """The one line a signal-stopped run ends with: where it stopped and how to continue."""
    s = trainer.state
    where = f"epoch {s.epoch + 1}, step {s.step}" if s.step else f"the end of epoch {s.epoch}"
    name = signal.Signals(signum).name
    return Interrupted(f"stopped by {name} at {where}; state saved to {last}; continue with --resume {last}", signum)


def make_scaler(precision: str, device: torch.device, resume: dict[str, Any] | None) -> Any:
    """A gradient scaler for fp16 (its small range underflows gradients without one); None otherwise."""
    if precision != "fp16":
        return None
    scaler = torch.amp.GradScaler(device.type)
    if resume is not None and "scaler" in resume:
        scaler.load_state_dict(resume["scaler"])
    return scaler


def finish_run(writer: RunWriter, data: PreparedData, channels_last: bool, device: torch.device) -> dict[str, float]:
    """Evaluate best.pt on the test split and store those metrics in best.pt itself."""
    from dlcli.checkpoint import load_checkpoint

    best = load_checkpoint(writer.best_path)
    if data.test is None:
        return {}
    model = best.build_model().to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    test = split_metrics(model, data.test, channels_last)
    best.metrics.update({"test_accuracy": test["accuracy"], "test_loss": test["loss"]})
    save_checkpoint(best, writer.best_path)
    return {"accuracy": test["accuracy"], "loss": test["loss"], "test_samples": test["samples"]}

