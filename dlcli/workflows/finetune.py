"""`dlcli finetune`: adapt a trained checkpoint to a (new) dataset on the one training loop.

The head is replaced when the classes differ, a first convolution is adapted when the channel
count differs (mean kernel, rescaled), and weights that cannot transfer are refused by name.
Freezing: `backbone` trains only the head but lets BatchNorm statistics follow the new data;
`all-but-head` also keeps norm layers in eval mode, so the backbone is exactly the pretrained one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from torch import nn

from dlcli.checkpoint import Checkpoint, lineage_entry, load_checkpoint
from dlcli.console import Console
from dlcli.engine import ClassificationTask
from dlcli.errors import UsageError
from dlcli.losses import make_loss
from dlcli.models import create_model
from dlcli.models.surgery import (
    head_name,
    head_parameter_names,
    norm_modules_outside,
    set_frozen,
    train_mode_with_frozen_norms,
    transfer_weights,
)
from dlcli.optim import parameter_groups
from dlcli.workflows.finetune_config import FinetuneConfig
from dlcli.workflows.preparation import PreparedData, prepare_data
from dlcli.workflows.resolve import preview, start_run, with_data, with_defaults
from dlcli.workflows.train import TrainResult
from dlcli.workflows.training import TrainingJob, train_and_save


@dataclass
class FinetuneResult(TrainResult):
    """`dlcli finetune --json`: train's keys (metrics also hold head_replaced), then parent."""

    command: ClassVar[str] = "finetune"
    parent: str = ""


def build_finetune_model(parent: Checkpoint, data: PreparedData, console: Console) -> tuple[nn.Module, bool]:
    """The parent's architecture for the new data, with every transferable weight copied.

    Returns (model, head_replaced)."""
    ds = data.dataset
    if parent.input_shape[1:] != ds.input_shape[1:] and parent.model_name in ("mlp", "vit"):
        raise UsageError(
            f"{parent.model_name} was trained on inputs {parent.input_shape} and cannot take {ds.input_shape}: "
            "its layers depend on the input size. Use cnn or resnet, which pool globally."
        )
    model = create_model(parent.model_name, ds.input_shape, ds.num_classes, ds.mean, ds.std, parent.model_args)
    head = head_name(model)
    replace_head = parent.classes != ds.classes
    skip = {n for n in parent.state_dict if n.startswith(head + ".")} if replace_head else set()
    parent_model = parent.build_model()  # applies pruned shapes, if any, before transfer
    adapted, refused = transfer_weights(model, parent_model.state_dict(), skip)
    if refused:
        raise UsageError(f"cannot transfer weights to {ds.name}: {'; '.join(refused[:3])}")
    if adapted:
        console.info(f"adapted {', '.join(adapted)} from {parent.input_shape[0]} to {ds.input_shape[0]} channels")
    if replace_head:
        console.info(f"head replaced: {parent.num_classes} classes -> {ds.num_classes} classes of {ds.name}")
    return model, replace_head


def optimizer_groups(model: nn.Module, weight_decay: float, base_lr: float, head_lr: float | None,
                     ) -> list[dict[str, Any]]:
    """Backbone and head as separate groups so --head-lr can differ from --lr (discriminative lrs).

    Frozen parameters are included too: when --unfreeze-after turns them on, the optimizer already
    knows them (parameters without gradients are skipped by every torch optimizer).
    """
    head = head_parameter_names(model)
    named = [(n, p) for n, p in model.named_parameters()]
    for _, p in named:
        p.requires_grad_(True)  # parameter_groups only collects trainable parameters
    backbone = parameter_groups([(n, p) for n, p in named if n not in head], weight_decay)
    head_groups = parameter_groups([(n, p) for n, p in named if n in head], weight_decay,
                                   lr_scale=(head_lr / base_lr) if head_lr else 1.0)
    return backbone + head_groups


def apply_freeze(model: nn.Module, freeze: str):
    """Set requires_grad for the --freeze mode; return the loop's train_mode function (or None)."""
    if freeze == "none":
        set_frozen(model, None)
        return None
    set_frozen(model, head_parameter_names(model))
    if freeze == "all-but-head":
        return train_mode_with_frozen_norms(norm_modules_outside(model, head_name(model)))
    return None


def describe(config: FinetuneConfig) -> dict[str, Any]:
    """What `finetune --print-config` prints: the run's config as resolved (the parent's dataset by
    default), the parent and the freezing schedule."""
    parent = load_checkpoint(config.checkpoint)
    train = preview(replace(config.train, model=parent.model_name, model_args=parent.model_args), parent.dataset)
    return {**train.to_dict(), "checkpoint": str(config.checkpoint), "freeze": config.freeze,
            "unfreeze_after": config.unfreeze_after, "head_lr": config.head_lr}


def run(config: FinetuneConfig, console: Console) -> FinetuneResult:
    from dlcli.runs import prepare_out_dir

    start = time.perf_counter()
    parent = load_checkpoint(config.checkpoint)
    # The default lr is the from-scratch one: on MNIST -> Fashion-MNIST with 500 labels a quarter of
    # it finetuned to 71.4 % against 76.7 % at the full rate (benchmarks/bench_transfer.py).
    cfg = with_defaults(replace(config.train, model=parent.model_name, model_args=parent.model_args), parent.dataset)
    cfg, device, generator = start_run(cfg, console)
    data = prepare_data(cfg, device, generator, console)
    cfg = with_data(cfg, device, len(data.dataset.train), data.dataset.input_shape, console)
    model, head_replaced = build_finetune_model(parent, data, console)
    model = model.to(device)
    groups = optimizer_groups(model, cfg.weight_decay, cfg.lr, config.head_lr)
    console.info(f"finetuning {config.checkpoint} (freeze: {config.freeze})")
    job = TrainingJob(
        model=model, model_name=parent.model_name, model_args=parent.model_args,
        task=ClassificationTask(make_loss(cfg.loss, cfg.label_smoothing), cfg.l1),
        lineage=[*parent.lineage, lineage_entry("finetune", source=config.checkpoint, dataset=cfg.data,
                                                freeze=config.freeze, head_replaced=head_replaced)],
        optimizer_groups=groups,
    )
    attach_freezing(job, config, console)
    out_dir = config.out_dir or prepare_out_dir(None, "finetune", None, False)
    trained = train_and_save(cfg, job, data, out_dir, console, device)
    return FinetuneResult(str(trained.best), {**trained.metrics, "head_replaced": head_replaced}, str(device),
                          time.perf_counter() - start, run_dir=str(trained.run_dir),
                          stopped_early=trained.stopped_early, parent=str(config.checkpoint))


def attach_freezing(job: TrainingJob, config: FinetuneConfig, console: Console) -> None:
    """--freeze applied to the job's model, and --unfreeze-after as the job's epoch-start hook."""
    model = job.model
    state = {"train_mode": apply_freeze(model, config.freeze), "unfrozen": False}

    def on_epoch_start(epoch: int) -> None:
        # `>=` with a one-time switch rather than `==`: a run resumed after the unfreezing epoch must
        # unfreeze too, or it would continue a different model from the one that was saved.
        due = config.unfreeze_after is not None and epoch >= config.unfreeze_after + 1
        if due and not state["unfrozen"] and config.freeze != "none":
            set_frozen(model, None)
            state["train_mode"], state["unfrozen"] = None, True
            console.info(f"epoch {epoch}: unfreezing all layers")

    job.on_epoch_start = on_epoch_start
    job.train_mode = lambda m: (state["train_mode"] or nn.Module.train)(m)
