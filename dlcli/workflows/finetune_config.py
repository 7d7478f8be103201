"""`FinetuneConfig`, kept free of torch: `dlcli finetune`'s own options take their help text, shown
default and choices from these field declarations, and `dlcli --help` must not import torch.
Re-exported by dlcli.workflows.finetune, whose `run` takes it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dlcli.choices import FREEZE_MODES
from dlcli.config import TrainConfig, flag_name, option
from dlcli.validation import validate_fields


@dataclass(frozen=True)
class FinetuneConfig:
    """Adapting a trained checkpoint: the parent, the training run's config, the freezing schedule and
    where the run goes."""

    checkpoint: Path
    """The parent checkpoint (its model, weights and, by default, dataset)."""
    train: TrainConfig = field(default_factory=TrainConfig)
    freeze: str = option("none", choices=FREEZE_MODES,
                         help="none, backbone (train head + BatchNorm stats) or all-but-head (head only).")
    unfreeze_after: int | None = option(None, ge=0, help="Unfreeze everything after N epochs.")
    head_lr: float | None = option(None, gt=0, show="--lr", help="Learning rate of the head.")
    out_dir: Path | None = None
    """The run folder, made by the caller; None: a fresh runs/finetune/expN."""

    def __post_init__(self) -> None:
        """Checked when built, before the command makes its run folder."""
        validate_fields(self, flag_name)
