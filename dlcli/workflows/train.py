"""`dlcli train`: build a registered model for a dataset and train it with the one loop."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from dlcli.checkpoint import lineage_entry
from dlcli.config import TrainConfig
from dlcli.console import Console
from dlcli.device import describe_device, resolve_device, seed_everything
from dlcli.engine import ClassificationTask
from dlcli.losses import make_loss
from dlcli.models import create_model, model_args
from dlcli.threads import use_threads
from dlcli.workflows.preparation import DEFAULT_DATASET, prepare_data
from dlcli.workflows.training import TrainingJob, train_and_save


def resolved_model_args(name: str, args: dict[str, Any], dropout: float | None) -> dict[str, Any]:
    """Model arguments with --dropout folded in (an error for models without a dropout argument)."""
    args = dict(args)
    if dropout is not None:
        args["dropout"] = dropout
    return model_args(name, args)


def run(cfg: TrainConfig, out_dir: Path, console: Console) -> dict[str, Any]:
    start = time.perf_counter()
    cfg.data = cfg.data or DEFAULT_DATASET
    cfg.validate()
    device = resolve_device(cfg.device)
    cfg.threads = use_threads(cfg.threads)  # recorded: results differ in the last bits by thread count
    generator = seed_everything(cfg.seed)
    console.info(f"device: {describe_device(device)}")
    data = prepare_data(cfg, device, generator, console)
    args = resolved_model_args(cfg.model, cfg.model_args, cfg.dropout)
    ds = data.dataset
    model = create_model(cfg.model, ds.input_shape, ds.num_classes, ds.mean, ds.std, args).to(device)
    job = TrainingJob(
        command="train", model=model, model_name=cfg.model, model_args=args,
        task=ClassificationTask(make_loss(cfg.loss, cfg.label_smoothing), cfg.l1),
        lineage=[lineage_entry("train", dataset=cfg.data, seed=cfg.seed)],
    )
    return train_and_save(cfg, job, data, out_dir, console, device, start)
