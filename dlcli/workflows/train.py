"""`dlcli train`: build a registered model for a dataset and train it with the one loop."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from torch import nn

from dlcli.checkpoint import Checkpoint, lineage_entry
from dlcli.config import TrainConfig
from dlcli.console import Console, result
from dlcli.data.dataset import Dataset
from dlcli.device import describe_device, resolve_device, seed_everything
from dlcli.engine import ClassificationTask
from dlcli.losses import make_loss
from dlcli.models import count_parameters, create_model, model_args
from dlcli.runs import record_latest
from dlcli.workflows.training import RunWriter, prepare_data, recommended_epochs, run_fit


def resolved_model_args(cfg: TrainConfig) -> dict[str, Any]:
    """Model arguments with --dropout folded in (an error for models without a dropout argument)."""
    args = dict(cfg.model_args)
    if cfg.dropout is not None:
        args["dropout"] = cfg.dropout
    return model_args(cfg.model, args)


def checkpoint_factory(
    model: nn.Module, cfg: TrainConfig, dataset: Dataset, args: dict[str, Any], lineage: list[dict[str, Any]]
):
    """Return make_checkpoint(metrics) for RunWriter: a snapshot of the model's current weights."""

    def make(metrics: dict[str, Any]) -> Checkpoint:
        return Checkpoint(
            model_name=cfg.model, model_args=args, state_dict=model.state_dict(), classes=dataset.classes,
            input_shape=dataset.input_shape, mean=dataset.mean, std=dataset.std, dataset=cfg.data,
            metrics=metrics, config=cfg.to_dict(), lineage=lineage,
        )

    return make


def run(cfg: TrainConfig, out_dir: Path, console: Console) -> dict[str, Any]:
    start = time.perf_counter()
    cfg.validate()
    device = resolve_device(cfg.device)
    generator = seed_everything(cfg.seed)
    console.info(f"device: {describe_device(device)}")
    data = prepare_data(cfg, device, generator, console)
    epochs = cfg.epochs or recommended_epochs(cfg.data)
    cfg.epochs = epochs
    args = resolved_model_args(cfg)
    ds = data.dataset
    model = create_model(cfg.model, ds.input_shape, ds.num_classes, ds.mean, ds.std, args).to(device)
    console.info(f"model: {cfg.model} {args}  parameters {count_parameters(model):,}")
    console.info(f"training {epochs} epochs on {len(data.train)} samples, validating on "
                 f"{len(data.val) if data.val else 0}; writing to {out_dir}")
    lineage = [lineage_entry("train", dataset=cfg.data, epochs=epochs, seed=cfg.seed)]
    writer = RunWriter(out_dir, checkpoint_factory(model, cfg, ds, args, lineage))
    writer.write_config(cfg.to_dict())
    task = ClassificationTask(make_loss(cfg.loss, cfg.label_smoothing), cfg.l1)
    outcome = run_fit(cfg, model, task, data, epochs, writer, console, device, generator)
    record_latest(outcome.best_path)
    metrics = {
        **outcome.test_metrics,
        "val_accuracy": outcome.fit.best_val_accuracy,
        "best_epoch": outcome.fit.best_epoch,
        "epochs": len(outcome.fit.history),
        "params": count_parameters(model),
        "train_seconds": round(outcome.fit.seconds, 3),
    }
    if "accuracy" in metrics:
        console.info(f"test accuracy {metrics['accuracy']:.2%}  loss {metrics['loss']:.4f}  "
                     f"(best epoch {outcome.fit.best_epoch})")
    return result("train", str(outcome.best_path), metrics, str(device), time.perf_counter() - start,
                  run_dir=str(out_dir), stopped_early=outcome.fit.stopped_early)


