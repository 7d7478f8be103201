"""`dlcli prune`: load a checkpoint, prune it (in rounds, with recovery training between them on the
one training loop: dlcli.workflows.prune_rounds), measure what changed (prune_measure), and save a
self-describing checkpoint.

What is measured and how: accuracy on the test split before pruning, right after the last pruning
round and after recovery; parameters, non-zero parameters and MACs (torch-pruning's counter, batch 1);
file sizes; and, for channel pruning, the latency of the original and the pruned model exported to
ONNX and run by onnxruntime (fp32, CPU) with the same harness as `dlcli benchmark`. Unstructured
sparsity leaves every tensor dense, so no latency is claimed for it.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from dlcli.checkpoint import Checkpoint, load_checkpoint, save_checkpoint, written_by
from dlcli.compress import pruning
from dlcli.config import TrainConfig
from dlcli.console import Console
from dlcli.distributed import current as current_dist
from dlcli.errors import DataNotFoundError, UsageError
from dlcli.runs import check_step_output
from dlcli.workflows.preparation import PreparedData, load_data, prepare_data
from dlcli.workflows.prune_config import RECOVERY_BATCH_SIZE, PruneConfig
from dlcli.workflows.prune_measure import accuracy_on_test, compare_onnx_latency, model_stats
from dlcli.workflows.prune_record import pruned_checkpoint, pruning_metrics, pruning_record, verify_rebuild
from dlcli.workflows.prune_report import report
from dlcli.workflows.prune_rounds import Recovery, prune_rounds, recovery_config
from dlcli.workflows.resolve import preview, start_run, with_data
from dlcli.workflows.result import CommandResult

__all__ = ["RECOVERY_BATCH_SIZE", "PruneConfig", "PruneResult", "describe", "run"]


@dataclass
class PruneResult(CommandResult):
    """`dlcli prune --json`: command, artifact (the pruned checkpoint), metrics (accuracy before, right
    after pruning and after recovery; sparsity; params, nonzero_params and macs, each with a _before
    twin; size_bytes(_before); with channel latency: latency_threads, latency_ms_b{N}(_before)),
    device, seconds, parent, run_dir (the recovery runs, or null), pruning (what extra["pruning"] of
    the checkpoint records)."""

    command: ClassVar[str] = "prune"
    parent: str = ""
    run_dir: str | None = None
    pruning: dict[str, Any] = field(default_factory=dict)


def describe(config: PruneConfig) -> dict[str, Any]:
    """What `prune --print-config` prints: the recovery config as resolved (the checkpoint's model,
    model arguments and dataset), then what is pruned and how."""
    parent = load_checkpoint(config.checkpoint)
    train = preview(recovery_config(config.train, parent, config.finetune_epochs), parent.dataset)
    spec = config.spec
    return {**train.to_dict(), "checkpoint": str(config.checkpoint), "method": spec.method, "amount": spec.amount,
            "steps": spec.steps, "round_to": spec.channel_multiple, "ignore": list(spec.ignore),
            "finetune_epochs": config.finetune_epochs, "recover": config.recover}


def output_path(config: PruneConfig) -> Path:
    out = config.out or config.checkpoint.parent / f"pruned-{config.spec.method}-{config.spec.amount:g}.pt"
    if out.exists() and out.resolve() == config.checkpoint.resolve():
        raise UsageError(f"--out {out} is the checkpoint being pruned; write the pruned model to another file.")
    return check_step_output(out, config.force, "prune", written_by)


def run(config: PruneConfig, console: Console) -> PruneResult:
    start = time.perf_counter()
    spec, parent = config.spec, load_checkpoint(config.checkpoint)
    out = output_path(config)
    cfg, device, generator = start_run(recovery_config(config.train, parent, config.finetune_epochs), console)
    model = parent.build_model().to(device).eval()
    example = torch.rand(1, *parent.input_shape, device=device)  # inputs are pixels in [0, 1]
    original = copy.deepcopy(model)  # the KD teacher and the latency baseline
    pruner = pruning.make_pruner(model, spec, example)  # refuses inapplicable methods before any data work
    recovery = recovery_setup(config, cfg, parent, device, generator, original, console)
    before = model_stats(model, example)
    accuracy_before = accuracy_on_test(model, recovery.data, recovery.channels_last)
    rounds = prune_rounds(pruner, model, spec, recovery, console)
    pruner.finalize()
    after = model_stats(model, example)
    accuracy = accuracy_on_test(model, recovery.data, recovery.channels_last)
    if not current_dist().is_main:  # the other ranks of a distributed recovery are done
        return PruneResult(None, {}, str(device), time.perf_counter() - start)
    metrics = pruning_metrics(spec, list(pruner.targets), before, after, accuracy_before, rounds, accuracy)
    if config.latency and spec.method == "channel":
        metrics.update(compare_onnx_latency(original, model, parent.input_shape, list(config.latency_batches),
                                            config.train.threads, console).metrics())
    metrics["size_bytes_before"] = config.checkpoint.stat().st_size
    record = pruning_record(spec, config.recover, before, after, rounds, recovery, metrics)
    ckpt = pruned_checkpoint(model, parent, config, recovery, metrics, record)
    verify_rebuild(ckpt, model, example)
    save_checkpoint(ckpt, out)
    metrics["size_bytes"] = out.stat().st_size
    report(spec, before, after, metrics, console)
    return PruneResult(str(out), metrics, str(device), time.perf_counter() - start, parent=str(config.checkpoint),
                       run_dir=str(recovery.run_dir) if recovery.run_dir else None, pruning=record)


def recovery_setup(config: PruneConfig, cfg: TrainConfig, parent: Checkpoint, device: torch.device,
                   generator: torch.Generator, original: nn.Module, console: Console) -> Recovery:
    """The data (None when the checkpoint's dataset is unavailable and nothing asked for it), the
    recovery epochs, the KD teacher and the runs' folder."""
    from dlcli.distributed import shared_run_dir
    from dlcli.runs import new_run_dir

    data = load_recovery_data(config, cfg, parent, device, generator, console)
    epochs = config.finetune_epochs if config.finetune_epochs is not None else (1 if data else 0)
    if data is not None:
        cfg = with_data(cfg, device, len(data.dataset.train), data.dataset.input_shape, console)
    if config.recover == "kd" and not epochs:
        raise UsageError("--recover kd needs recovery training: --finetune-epochs must be at least 1.")
    run_dir = None
    if epochs:
        run_dir = config.run_dir or shared_run_dir(lambda: new_run_dir("prune"))
    teacher = original if config.recover == "kd" else None
    return Recovery(cfg, data, epochs, teacher, run_dir, parent, device)


def load_recovery_data(config: PruneConfig, cfg: TrainConfig, parent: Checkpoint, device: torch.device,
                       generator: torch.Generator, console: Console) -> PreparedData | None:
    """The data for recovery and accuracy; None (with a warning) when the checkpoint's own dataset is
    unavailable and neither --data nor --finetune-epochs asked for it."""
    from dlcli.workflows.evaluate import check_compatible

    try:
        dataset = load_data(cfg.data, cfg.data_dir, console)
    except DataNotFoundError as exc:
        if config.train.data is not None or config.finetune_epochs:
            raise
        console.warn(f"{exc} Pruning without recovery training or accuracy; pass --data to add them.")
        return None
    check_compatible(dataset, parent.input_shape, parent.classes, config.checkpoint)
    return prepare_data(cfg, device, generator, console, dataset)
