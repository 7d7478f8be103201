"""`dlcli train`: build a registered model for a dataset and train it with the one loop."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from dlcli.checkpoint import lineage_entry
from dlcli.config import TrainConfig
from dlcli.console import Console
from dlcli.engine import ClassificationTask
from dlcli.losses import make_loss
from dlcli.models import create_model, model_args
from dlcli.workflows.preparation import DEFAULT_DATASET, prepare_data
from dlcli.workflows.resolve import preview, start_run, with_data, with_defaults, with_recipe
from dlcli.workflows.result import CommandResult
from dlcli.workflows.training import TrainingJob, train_and_save


@dataclass(frozen=True)
class TrainRunConfig:
    """A training run: its hyperparameters and where it goes."""

    train: TrainConfig = field(default_factory=TrainConfig)
    out_dir: Path | None = None
    """The run folder, made by the caller (the CLI: --out or runs/train/expN); None: a fresh
    runs/train/expN."""


@dataclass
class TrainResult(CommandResult):
    """`dlcli train --json`: command, artifact (best.pt), metrics (TrainedRun.metrics), device,
    seconds, run_dir, stopped_early."""

    command: ClassVar[str] = "train"
    run_dir: str = ""
    stopped_early: bool = False


def resolved_model_args(name: str, args: dict[str, Any], dropout: float | None) -> dict[str, Any]:
    """Model arguments with --dropout folded in (an error for models without a dropout argument)."""
    args = dict(args)
    if dropout is not None:
        args["dropout"] = dropout
    return model_args(name, args)


def describe(train: TrainConfig) -> dict[str, Any]:
    """What `train --print-config` prints: the config as the run resolves it."""
    return preview(train, DEFAULT_DATASET, from_scratch=True).to_dict()


def run(config: TrainRunConfig, console: Console) -> TrainResult:
    from dlcli.runs import prepare_out_dir

    start = time.perf_counter()
    cfg, device, generator = start_run(with_defaults(with_recipe(config.train, DEFAULT_DATASET), DEFAULT_DATASET),
                                       console)
    data = prepare_data(cfg, device, generator, console)
    ds = data.dataset
    cfg = with_data(cfg, device, len(ds.train), ds.input_shape, console, from_scratch=True)
    args = resolved_model_args(cfg.model, cfg.model_args, cfg.dropout)
    model = create_model(cfg.model, ds.input_shape, ds.num_classes, ds.mean, ds.std, args).to(device)
    job = TrainingJob(
        model=model, model_name=cfg.model, model_args=args,
        task=ClassificationTask(make_loss(cfg.loss, cfg.label_smoothing), cfg.l1),
        lineage=[lineage_entry("train", dataset=cfg.data, seed=cfg.seed)],
    )
    out_dir = config.out_dir or prepare_out_dir(None, "train", None, False)
    trained = train_and_save(cfg, job, data, out_dir, console, device)
    return TrainResult(str(trained.best), trained.metrics, str(device), time.perf_counter() - start,
                       run_dir=str(trained.run_dir), stopped_early=trained.stopped_early)
