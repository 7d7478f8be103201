"""The rounds of `dlcli prune`: prune to the next amount, test, recover accuracy with the one training
loop (on the labels, or distilling from the unpruned model), test again."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dlcli.checkpoint import Checkpoint, derived_checkpoint, load_checkpoint
from dlcli.choices import DEFAULT_LR
from dlcli.compress import pruning
from dlcli.compress.pruning import PruneSpec
from dlcli.config import TrainConfig
from dlcli.console import Console
from dlcli.engine import ClassificationTask, DistillationTask
from dlcli.errors import UsageError
from dlcli.losses import make_loss
from dlcli.workflows.fit import FitSetup, TrainOutcome, run_fit
from dlcli.workflows.preparation import PreparedData
from dlcli.workflows.prune_config import RECOVERY_LR_FACTOR
from dlcli.workflows.prune_measure import accuracy_on_test
from dlcli.workflows.prune_report import round_line
from dlcli.workflows.run_writer import RunWriter


def recovery_config(cfg: TrainConfig, parent: Checkpoint, finetune_epochs: float | None) -> TrainConfig:
    """The parent's model and dataset, the recovery epochs per round (0, no recovery, is recorded as 1:
    the loop is never called, and a config's epochs must be positive) and the recovery learning rate
    by default. Validated."""
    if cfg.dropout is not None:
        raise UsageError("--dropout changes the architecture; prune keeps the checkpoint's model as it is.")
    lr = cfg.lr if cfg.lr is not None else DEFAULT_LR[cfg.optimizer] * RECOVERY_LR_FACTOR
    epochs = finetune_epochs or 1
    return replace(cfg, model=parent.model_name, model_args=dict(parent.model_args), data=cfg.data or parent.dataset,
                   epochs=epochs, lr=lr).validate()


@dataclass
class Recovery:
    """How each round recovers: the resolved training config, data, epochs per round (0: none), the
    KD teacher (None: labels), and where the rounds' runs go."""

    cfg: TrainConfig
    data: PreparedData | None
    epochs: float
    teacher: nn.Module | None
    run_dir: Path | None
    parent: Checkpoint
    device: torch.device

    @property
    def channels_last(self) -> bool:
        return bool(self.cfg.channels_last) and self.data is not None


def prune_rounds(pruner: pruning.Pruner, model: nn.Module, spec: PruneSpec, recovery: Recovery,
                 console: Console) -> list[dict[str, Any]]:
    """Each round: prune to the next amount, test, recover (when epochs > 0), test again."""
    rounds = []
    start = pruning.layer_stats(model)
    for k in range(1, spec.steps + 1):
        amount = pruner.step()
        entry: dict[str, Any] = {"round": k, "amount": amount, "achieved": achieved(spec, start, model, pruner),
                                 "accuracy_pruned": accuracy_on_test(model, recovery.data, recovery.channels_last)}
        if recovery.epochs and recovery.data is not None and recovery.run_dir is not None:
            folder = recovery.run_dir if spec.steps == 1 else recovery.run_dir / f"round{k}"
            outcome = recover(model, recovery, folder, spec.method, console)
            entry.update({"accuracy_recovered": outcome.test_metrics.get("accuracy"),
                          "best_epoch": outcome.fit.best_epoch, "train_seconds": round(outcome.fit.seconds, 3)})
        rounds.append(entry)
        console.info(round_line(entry, spec.steps))
    return rounds


def achieved(spec: PruneSpec, start: dict[str, Any], model: nn.Module, pruner: pruning.Pruner) -> float:
    """What a round actually removed, measured as the final table measures it (channels removed or
    sparsity over the target layers): rounding to --round-to and layers kept whole make it differ
    from the scheduled `amount`, and the per-round line must agree with the table."""
    targets = list(pruner.targets)
    if spec.method == "channel":
        return pruning.channel_fraction_removed(start, pruning.layer_stats(model), targets)
    return pruning.sparsity(pruning.layer_stats(model), targets)


def recover(model: nn.Module, recovery: Recovery, out_dir: Path, method: str, console: Console) -> TrainOutcome:
    """Recovery training with the one loop (`run_fit`); masks stay applied, so pruned weights stay zero.
    The best epoch's weights (by validation accuracy) are loaded back into `model`."""
    cfg, parent, teacher = replace(recovery.cfg, epochs=recovery.epochs), recovery.parent, recovery.teacher
    loss = make_loss(cfg.loss, cfg.label_smoothing)
    task = DistillationTask(loss, teacher, l1=cfg.l1) if teacher is not None else ClassificationTask(loss, cfg.l1)

    def make_checkpoint(metrics: dict[str, Any]) -> Checkpoint:
        return derived_checkpoint(
            parent, pruning.dense_state_dict(model), dataset=cfg.data, metrics=metrics, config=cfg.to_dict(),
            extra={**parent.extra, "pruning": {"method": method, "recovering": True}},  # its shapes may differ
        )

    writer = RunWriter(out_dir, make_checkpoint)
    writer.write_config(cfg.to_dict())
    how = ", distilling from the unpruned model" if teacher is not None else ""
    console.info(f"recovery: {cfg.epochs} epoch(s) on {len(recovery.data.train)} samples, lr {cfg.lr:g} "
                 f"({cfg.optimizer}, {cfg.scheduler}){how}")
    outcome = run_fit(cfg, FitSetup(model, task), recovery.data, cfg.epochs, writer, console, recovery.device)
    pruning.load_dense_state_dict(model, load_checkpoint(outcome.best_path).state_dict)
    return outcome
