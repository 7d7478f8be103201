"""What train, finetune and distill share around the one loop: data preparation, optimizer and
schedule set-up, per-epoch checkpointing, Ctrl-C handling, final test evaluation and the curves."""

from __future__ import annotations

import json
import signal
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
from dlcli.data.dataset import Dataset
from dlcli.distributed import current as current_dist
from dlcli.distributed import wrap_model
from dlcli.engine import Callbacks, FitResult, LoopOptions, StopTraining, Task, Trainer, TrainerState, evaluate
from dlcli.engine.budget import selects_by_validation
from dlcli.engine.loop import total_steps
from dlcli.engine.progress import NullProgress, make_progress
from dlcli.engine.state import capture_rng, restore_rng
from dlcli.errors import Interrupted, UsageError
from dlcli.losses import make_loss
from dlcli.optim import make_optimizer, make_scheduler, parameter_groups
from dlcli.plots import plot_curves
from dlcli.signals import GracefulStop
from dlcli.workflows.preparation import PreparedData, budget_epochs, eval_batches, train_batches, use_channels_last


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


class RunWriter(Callbacks):
    """Persists a run as it goes: last.pt (resumable: weights, optimizer, schedule position, RNG
    states) every epoch and every `--save-every` steps, best.pt (weights only) on improvement, and
    metrics.jsonl lines. In a distributed run only rank 0 writes; every rank polls the stop flag.

    `make_checkpoint(metrics)` is supplied by the command, so it decides what the artifact records
    (lineage, parent) while this class decides when and where it is written.
    """

    def __init__(self, out_dir: Path, make_checkpoint: Callable[[dict[str, Any]], Checkpoint],
                 stop: GracefulStop | None = None, history: list[dict[str, Any]] | None = None,
                 on_epoch_start: Callable[[int], None] | None = None) -> None:
        self.out_dir = out_dir
        self.on_epoch_start = on_epoch_start
        self.writes = current_dist().is_main
        if self.writes:
            out_dir.mkdir(parents=True, exist_ok=True)
        self.make_checkpoint = make_checkpoint
        self.best_path = out_dir / "best.pt"
        self.last_path = out_dir / "last.pt"
        self.metrics_path = out_dir / "metrics.jsonl"
        self.stop = stop
        if self.writes:  # a reused folder must not mix two runs' epochs; a resumed one keeps its own
            lines = "".join(json.dumps(h) + "\n" for h in history or [])
            atomic_write(self.metrics_path, lambda tmp: Path(tmp).write_text(lines))

    def write_config(self, values: dict[str, Any]) -> None:
        if self.writes:
            text = dump_yaml(values)
            atomic_write(self.out_dir / "config.yaml", lambda tmp: Path(tmp).write_text(text))

    def epoch_start(self, trainer: Trainer, epoch: int) -> None:
        if self.on_epoch_start is not None:
            self.on_epoch_start(epoch)

    def epoch_end(self, trainer: Trainer, summary: dict[str, Any], improved: bool) -> None:
        if not self.writes:
            return
        with self.metrics_path.open("a") as f:
            f.write(json.dumps(summary) + "\n")
        ckpt = self.make_checkpoint(_checkpoint_metrics(summary))
        if improved:
            save_checkpoint(ckpt, self.best_path)
        ckpt.training_state = training_state(trainer)
        save_checkpoint(ckpt, self.last_path)

    def checkpoint(self, trainer: Trainer) -> None:
        if not self.writes:
            return
        ckpt = self.make_checkpoint({"epoch": trainer.state.epoch, "step": trainer.state.step})
        ckpt.training_state = training_state(trainer)
        save_checkpoint(ckpt, self.last_path)

    def stop_requested(self) -> int | None:
        local = self.stop.requested if self.stop is not None else None
        ctx = current_dist()
        if not ctx.enabled:
            return local
        flag = ctx.reduce_sum(torch.tensor([0 if local is None else local], dtype=torch.long))
        return None if int(flag) == 0 else (local or signal.SIGTERM)


def training_state(trainer: Trainer) -> dict[str, Any]:
    """What last.pt needs beyond the weights to continue exactly where the run is."""
    state = trainer.state.to_dict()
    state["partial"] = {k: v.detach().cpu() for k, v in trainer.state.partial.items()}
    saved: dict[str, Any] = {
        "trainer": state,
        "optimizer": trainer.optimizer.state_dict(),
        "rng": capture_rng(),
        "world_size": current_dist().world,
    }
    if trainer.scaler is not None:
        saved["scaler"] = trainer.scaler.state_dict()
    return saved


def _checkpoint_metrics(summary: dict[str, Any]) -> dict[str, Any]:
    keep = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy")
    return {k: summary[k] for k in keep if k in summary}


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
    cfg: TrainConfig, setup: FitSetup, data: PreparedData, epochs: int, writer: RunWriter, console: Console,
    device: torch.device,
) -> TrainOutcome:
    """Train with the one loop, saving as we go; then test the best checkpoint and plot the curves.

    SIGTERM and the first Ctrl-C stop the run at the next step boundary after saving last.pt
    (StopTraining, exit 143 / 130); `--resume` continues from it.
    """
    ctx = current_dist()
    channels_last = use_channels_last(cfg, device, data.dataset)
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
                            select_best=data.val is not None and selects_by_validation(len(data.val))),
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
    test_metrics = finish_run(writer, data, channels_last, device, eval_loss, result) if ctx.is_main else {}
    if ctx.is_main:
        plot_curves(result.history, writer.out_dir / "curves.png")
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


def load_resume_state(cfg: TrainConfig, job: TrainingJob, epochs: int, console: Console) -> dict[str, Any] | None:
    """With --resume: the checkpoint's training state, its weights loaded into the job's model."""
    if not cfg.resume:
        return None
    from dlcli.checkpoint import load_checkpoint
    from dlcli.resume import check_resumable

    ckpt = load_checkpoint(cfg.resume)
    check_resumable(ckpt.training_state, Path(cfg.resume), epochs)
    if ckpt.model_name != job.model_name:
        raise UsageError(f"--resume {cfg.resume} holds a {ckpt.model_name!r} model, not {job.model_name!r}.")
    job.model.load_state_dict(ckpt.state_dict)
    state = ckpt.training_state
    saved_world, world = int(state.get("world_size", 1)), current_dist().world
    if saved_world != world and state["trainer"].get("step"):
        console.warn(f"resuming mid-epoch with {world} process(es) where {saved_world} saved it: the rest of "
                     "this epoch is sharded differently, so the run is not an exact continuation")
    trainer = state["trainer"]
    console.info(f"resuming from {cfg.resume}: epoch {trainer['epoch']} done"
                 + (f", step {trainer['step']} of epoch {trainer['epoch'] + 1}" if trainer.get("step") else ""))
    return state


def train_and_save(
    cfg: TrainConfig, job: TrainingJob, data: PreparedData, out_dir: Path, console: Console,
    device: torch.device, start: float,
) -> dict[str, Any]:
    """Run the job with the one loop, write the run folder, and return the command's result."""
    from dlcli.console import result
    from dlcli.models import count_parameters
    from dlcli.runs import record_latest

    epochs = cfg.epochs or budget_epochs(cfg, data, console)
    cfg.epochs = epochs
    resume = load_resume_state(cfg, job, epochs, console)
    console.info(f"model: {job.model_name} {job.model_args}  parameters {count_parameters(job.model):,}")
    console.info(f"training {epochs:g} epochs on {len(data.train)} samples, validating on "
                 f"{len(data.val) if data.val else 0}; writing to {out_dir}")
    with GracefulStop() as stop:
        writer = RunWriter(out_dir, checkpoint_factory(
            job.model, job.model_name, job.model_args, cfg, data.dataset, job.lineage, job.extra), stop,
            history=resume["trainer"]["history"] if resume else None, on_epoch_start=job.on_epoch_start)
        writer.write_config(cfg.to_dict())
        setup = FitSetup(job.model, job.task, job.optimizer_groups, job.train_mode, resume)
        outcome = run_fit(cfg, setup, data, epochs, writer, console, device)
    if not current_dist().is_main:
        return {}
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
    if outcome.fit.skipped_batches:
        metrics["skipped_batches"] = outcome.fit.skipped_batches
    if "accuracy" in metrics:
        console.info(f"test accuracy {metrics['accuracy']:.2%}  loss {metrics['loss']:.4f}  "
                     f"(best epoch {outcome.fit.best_epoch})")
    return result(job.command, str(outcome.best_path), metrics, str(device), time.perf_counter() - start,
                  run_dir=str(out_dir), stopped_early=outcome.fit.stopped_early)
