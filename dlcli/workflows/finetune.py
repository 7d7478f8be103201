"""`dlcli finetune`: adapt a trained checkpoint to a (new) dataset on the one training loop.

The head is replaced when the classes differ, a first convolution is adapted when the channel
count differs (mean kernel, rescaled), and weights that cannot transfer are refused by name.
Freezing: `backbone` trains only the head but lets BatchNorm statistics follow the new data;
`all-but-head` also keeps norm layers in eval mode, so the backbone is exactly the pretrained one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from dlcli.checkpoint import Checkpoint, lineage_entry, load_checkpoint
from dlcli.config import TrainConfig, flag_name
from dlcli.console import Console
from dlcli.device import describe_device, resolve_device, seed_everything
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
from dlcli.optim import DEFAULT_LR, parameter_groups
from dlcli.threads import use_threads
from dlcli.validation import check, validate_fields
from dlcli.workflows.preparation import PreparedData, prepare_data
from dlcli.workflows.training import TrainingJob, train_and_save

FREEZE_CHOICES = ("none", "backbone", "all-but-head")


@dataclass
class FinetuneOptions:
    freeze: str = "none"
    unfreeze_after: int | None = field(default=None, metadata=check(ge=0))
    head_lr: float | None = field(default=None, metadata=check(gt=0))

    def __post_init__(self) -> None:
        validate_fields(self, flag_name)


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


def optimizer_groups(model: nn.Module, cfg: TrainConfig, head_lr: float | None) -> list[dict[str, Any]]:
    """Backbone and head as separate groups so --head-lr can differ from --lr (discriminative lrs).

    Frozen parameters are included too: when --unfreeze-after turns them on, the optimizer already
    knows them (parameters without gradients are skipped by every torch optimizer).
    """
    head = head_parameter_names(model)
    base_lr = cfg.lr if cfg.lr is not None else DEFAULT_LR[cfg.optimizer]
    named = [(n, p) for n, p in model.named_parameters()]
    for _, p in named:
        p.requires_grad_(True)  # parameter_groups only collects trainable parameters
    backbone = parameter_groups([(n, p) for n, p in named if n not in head], cfg.weight_decay)
    head_groups = parameter_groups([(n, p) for n, p in named if n in head], cfg.weight_decay,
                                   lr_scale=(head_lr / base_lr) if head_lr else 1.0)
    return backbone + head_groups


def apply_freeze(model: nn.Module, freeze: str):
    """Set requires_grad for the --freeze mode; return the loop's train_mode function (or None)."""
    if freeze not in FREEZE_CHOICES:
        raise UsageError(f"--freeze must be one of {', '.join(FREEZE_CHOICES)}, got {freeze!r}.")
    if freeze == "none":
        set_frozen(model, None)
        return None
    set_frozen(model, head_parameter_names(model))
    if freeze == "all-but-head":
        return train_mode_with_frozen_norms(norm_modules_outside(model, head_name(model)))
    return None


def run(
    parent_path: Path, cfg: TrainConfig, options: FinetuneOptions, out_dir: Path, console: Console
) -> dict[str, Any]:
    start = time.perf_counter()
    parent = load_checkpoint(parent_path)
    cfg.data = cfg.data or parent.dataset
    # The default lr is the from-scratch one: on MNIST -> Fashion-MNIST with 500 labels a quarter of
    # it finetuned to 71.4 % against 76.7 % at the full rate (benchmarks/bench_transfer.py).
    if options.unfreeze_after is not None and options.unfreeze_after < 0:
        raise UsageError("--unfreeze-after must be >= 0.")
    cfg.validate()
    device = resolve_device(cfg.device)
    cfg.threads = use_threads(cfg.threads)  # recorded: results differ in the last bits by thread count
    generator = seed_everything(cfg.seed)
    console.info(f"device: {describe_device(device)}")
    data = prepare_data(cfg, device, generator, console)
    model, head_replaced = build_finetune_model(parent, data, console)
    model = model.to(device)
    groups = optimizer_groups(model, cfg, options.head_lr)
    state = {"train_mode": apply_freeze(model, options.freeze), "unfrozen": False}
    console.info(f"finetuning {parent_path} (freeze: {options.freeze})")

    def on_epoch_start(epoch: int) -> None:
        # `>=` with a one-time switch rather than `==`: a run resumed after the unfreezing epoch must
        # unfreeze too, or it would continue a different model from the one that was saved.
        due = options.unfreeze_after is not None and epoch >= options.unfreeze_after + 1
        if due and not state["unfrozen"] and options.freeze != "none":
            set_frozen(model, None)
            state["train_mode"], state["unfrozen"] = None, True
            console.info(f"epoch {epoch}: unfreezing all layers")

    job = TrainingJob(
        command="finetune", model=model, model_name=parent.model_name, model_args=parent.model_args,
        task=ClassificationTask(make_loss(cfg.loss, cfg.label_smoothing), cfg.l1),
        lineage=[*parent.lineage, lineage_entry(
            "finetune", source=parent_path, dataset=cfg.data, freeze=options.freeze, head_replaced=head_replaced)],
        optimizer_groups=groups, on_epoch_start=on_epoch_start,
        train_mode=lambda m: (state["train_mode"] or nn.Module.train)(m),
    )
    outcome = train_and_save(cfg, job, data, out_dir, console, device, start)
    outcome["metrics"]["head_replaced"] = head_replaced
    outcome["parent"] = str(parent_path)
    return outcome
