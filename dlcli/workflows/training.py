"""What train, finetune and distill share around the one loop: a `TrainingJob` (what to train and
what to record) run by `train_and_save` into a run folder, resuming from last.pt when asked.
The loop's set-up is in dlcli.workflows.fit, the run folder's files in dlcli.workflows.run_writer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dlcli.config import TrainConfig
from dlcli.console import Console
from dlcli.distributed import current as current_dist
from dlcli.engine import Task
from dlcli.engine.budget import MIN_SELECTION_SAMPLES
from dlcli.errors import UsageError
from dlcli.signals import GracefulStop
from dlcli.workflows.fit import FitSetup, run_fit
from dlcli.workflows.preparation import PreparedData, picks_best_epoch
from dlcli.workflows.run_writer import RunWriter, checkpoint_factory


@dataclass
class TrainingJob:
    """Everything `train_and_save` needs beyond the config: what to train, how, and what to record."""

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


@dataclass
class TrainedRun:
    """What `train_and_save` hands back to its command: where the run went and its headline figures."""

    best: Path
    run_dir: Path
    metrics: dict[str, Any]
    """Test accuracy/loss/samples (when the data has a test split), val_accuracy, best_epoch, epochs,
    params, train_seconds, and skipped_batches when any were skipped."""
    stopped_early: bool


def load_resume_state(cfg: TrainConfig, job: TrainingJob, console: Console) -> dict[str, Any] | None:
    """With --resume: the checkpoint's training state, its weights loaded into the job's model."""
    if not cfg.resume:
        return None
    from dlcli.checkpoint import load_checkpoint
    from dlcli.resume import check_resumable, resumed_config

    ckpt = load_checkpoint(cfg.resume)
    check_resumable(ckpt.training_state, Path(cfg.resume), cfg.epochs)
    if ckpt.model_name != job.model_name:
        raise UsageError(f"--resume {cfg.resume} holds a {ckpt.model_name!r} model, not {job.model_name!r}.")
    # The CLI starts from the saved config; a Python caller passes one, which must be the same run.
    resumed_config(ckpt.config, cfg.to_dict(), Path(cfg.resume))
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
    cfg: TrainConfig, job: TrainingJob, data: PreparedData, out_dir: Path, console: Console, device: torch.device,
) -> TrainedRun:
    """Run the job with the one loop and write the run folder. `cfg` is resolved (its epochs and
    channels-last choice set: dlcli.workflows.resolve.with_data); it is saved as config.yaml."""
    from dlcli.models import count_parameters
    from dlcli.runs import record_latest

    resume = load_resume_state(cfg, job, console)
    console.info(f"model: {job.model_name} {job.model_args}  parameters {count_parameters(job.model):,}")
    console.info(f"training {cfg.epochs:g} epoch(s) on {len(data.train)} samples, validating on "
                 f"{len(data.val) if data.val else 0}; writing to {out_dir}")
    if data.val and not picks_best_epoch(data):
        console.info(f"best.pt will be the last epoch: {len(data.val)} validation samples are too few to "
                     f"pick an epoch by (at least {MIN_SELECTION_SAMPLES})")
    with GracefulStop() as stop:
        writer = RunWriter(out_dir, checkpoint_factory(
            job.model, job.model_name, job.model_args, cfg, data.dataset, job.lineage, job.extra), stop,
            history=resume["trainer"]["history"] if resume else None, on_epoch_start=job.on_epoch_start)
        writer.write_config(cfg.to_dict())
        setup = FitSetup(job.model, job.task, job.optimizer_groups, job.train_mode, resume)
        outcome = run_fit(cfg, setup, data, cfg.epochs, writer, console, device)
    if job.remember and current_dist().is_main:
        record_latest(outcome.best_path)
    metrics = {
        **outcome.test_metrics,
        "val_accuracy": outcome.fit.best_val_accuracy,
        "best_epoch": outcome.fit.best_epoch,
        "epochs": epochs_trained(len(outcome.fit.history), cfg.epochs),
        "params": count_parameters(job.model),
        "train_seconds": round(outcome.fit.seconds, 3),
    }
    if outcome.fit.skipped_batches:
        metrics["skipped_batches"] = outcome.fit.skipped_batches
    if "accuracy" in metrics:
        console.info(f"test accuracy {metrics['accuracy']:.2%}  loss {metrics['loss']:.4f}  "
                     f"(best epoch {outcome.fit.best_epoch})")
    return TrainedRun(outcome.best_path, out_dir, metrics, outcome.fit.stopped_early)


def epochs_trained(begun: int, planned: float) -> float:
    """Epochs the run trained: those begun, or the planned fraction when the last was cut short (1.5,
    not 2); a whole number stays an int in the JSON."""
    trained = min(begun, planned)
    return int(trained) if float(trained).is_integer() else trained
