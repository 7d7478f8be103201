"""What `dlcli prune` records: the headline metrics, the `extra["pruning"]` record of exactly what was
done to every layer, and the pruned checkpoint itself, checked to rebuild from its record."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from dlcli.checkpoint import Checkpoint, derived_checkpoint, lineage_entry
from dlcli.compress import pruning
from dlcli.compress.pruning import PruneSpec
from dlcli.errors import WorkError
from dlcli.workflows.prune_measure import ModelStats
from dlcli.workflows.prune_rounds import Recovery

if TYPE_CHECKING:
    from dlcli.workflows.prune import PruneConfig


def pruning_metrics(
    spec: PruneSpec, targets: list[str], before: ModelStats, after: ModelStats, accuracy_before: float | None,
    rounds: list[dict[str, Any]], accuracy: float | None,
) -> dict[str, Any]:
    """`targets`: the layers the amount applies to (channel: their output channels; else their weights)."""
    if spec.method == "channel":
        sparsity = pruning.channel_fraction_removed(before.layers, after.layers, targets)
    else:
        sparsity = pruning.sparsity(after.layers, targets)
    return {
        "accuracy": accuracy, "accuracy_before": accuracy_before,
        "accuracy_pruned": rounds[-1]["accuracy_pruned"] if rounds else None,
        "sparsity": sparsity, "params": after.params, "params_before": before.params,
        "params_ratio": after.params / before.params, "nonzero_params": after.nonzero_params,
        "nonzero_params_before": before.nonzero_params, "macs": after.macs, "macs_before": before.macs,
    }


def pruning_record(
    spec: PruneSpec, recover: str, before: ModelStats, after: ModelStats, rounds: list[dict[str, Any]],
    recovery: Recovery, metrics: dict[str, Any],
) -> dict[str, Any]:
    """What `extra["pruning"]` stores: enough to know exactly what was done to every layer."""
    layers = {}
    for name, stats in after.layers.items():
        layers[name] = {"shape_before": before.layers[name]["shape"], "shape": stats["shape"],
                        "sparsity": stats["zeros"] / stats["params"] if stats["params"] else 0.0}
    record: dict[str, Any] = {"epochs_per_round": recovery.epochs, "recover": recover}
    if recovery.epochs:
        cfg = recovery.cfg
        record.update({"data": cfg.data, "lr": cfg.lr, "batch_size": cfg.batch_size, "optimizer": cfg.optimizer,
                       "scheduler": cfg.scheduler, "train_samples": cfg.train_samples, "seed": cfg.seed})
    return {
        "method": spec.method, "amount": spec.amount, "steps": spec.steps, "schedule": spec.schedule(),
        "round_to": spec.channel_multiple, "ignore": list(spec.ignore), "importance": "l1-magnitude",
        "sparsity": metrics["sparsity"], "params": metrics["params"], "params_before": metrics["params_before"],
        "macs": metrics["macs"], "macs_before": metrics["macs_before"], "layers": layers, "rounds": rounds,
        "recovery": record,
    }


def pruned_checkpoint(
    model: nn.Module, parent: Checkpoint, config: PruneConfig, recovery: Recovery, metrics: dict[str, Any],
    record: dict[str, Any],
) -> Checkpoint:
    """The parent's checkpoint with the pruned weights, the pruning record and one more lineage step;
    its dataset and config are the recovery's when it was retrained, else the parent's."""
    spec, cfg, epochs = config.spec, recovery.cfg, recovery.epochs
    step = lineage_entry("prune", source=config.checkpoint, method=spec.method, amount=spec.amount,
                         steps=spec.steps, finetune_epochs=epochs, recover=config.recover,
                         dataset=cfg.data if epochs else None)
    return derived_checkpoint(
        parent, pruning.dense_state_dict(model), dataset=cfg.data if epochs else parent.dataset,
        metrics={k: v for k, v in metrics.items() if v is not None},
        config=cfg.to_dict() if epochs else parent.config, lineage=[*parent.lineage, step],
        extra={**parent.extra, "pruning": record},
    )


def verify_rebuild(ckpt: Checkpoint, model: nn.Module, example: torch.Tensor) -> None:
    """The saved weights must rebuild (from the architecture's name and arguments alone) into a model
    that computes what the pruned one does; otherwise nothing is written."""
    rebuilt = ckpt.build_model().to(example.device).eval()
    model.eval()
    x = torch.rand(4, *example.shape[1:], generator=torch.Generator().manual_seed(0)).to(example.device)
    with torch.no_grad():
        diff = float((rebuilt(x) - model(x)).abs().max())
    if not diff <= 1e-4:
        raise WorkError(f"the pruned model does not rebuild from its checkpoint (outputs differ by {diff:.3g}); "
                        "nothing was written.")
