"""What a training run leaves in its folder, written as it goes: last.pt (resumable), best.pt,
metrics.jsonl and config.yaml. `RunWriter` decides when and where; the command's `make_checkpoint`
decides what each checkpoint records."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dlcli.checkpoint import Checkpoint, save_checkpoint
from dlcli.config import TrainConfig, dump_yaml
from dlcli.data.dataset import Dataset
from dlcli.distributed import current as current_dist
from dlcli.engine import Callbacks, Trainer
from dlcli.engine.state import capture_rng
from dlcli.runs import atomic_write
from dlcli.signals import GracefulStop


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

