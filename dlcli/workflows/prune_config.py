"""`PruneConfig`, kept free of torch: `dlcli prune`'s own options take their help text and shown default
from these field declarations (and PruneSpec's), and `dlcli --help` must not import torch.
Re-exported by dlcli.workflows.prune, whose `run` takes it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dlcli.choices import RECOVER_MODES
from dlcli.compress.prune_spec import PruneSpec
from dlcli.config import TrainConfig, option
from dlcli.errors import UsageError

# Recovery defaults (when --lr / --batch-size are not given), chosen by measurement on MNIST with the
# default cnn (channel 0.5 and global 0.9, one epoch): batch 64 with sgd 0.1 recovered 0.2-0.5 pp more
# than batch 128 with 0.02-0.05, and as much as batch 32 in half the steps.
RECOVERY_LR_FACTOR = 0.5  # recovery lr = this x the optimizer's from-scratch default (sgd: 0.1)
RECOVERY_BATCH_SIZE = 64


@dataclass(frozen=True)
class PruneConfig:
    """Pruning a checkpoint: what to prune and how far, how to recover, what to measure, where to write."""

    checkpoint: Path
    spec: PruneSpec
    train: TrainConfig = field(default_factory=lambda: TrainConfig(batch_size=RECOVERY_BATCH_SIZE))
    """The recovery training's config (model and default dataset: the checkpoint's)."""
    finetune_epochs: float | None = option(
        None, show="1 when the data can be loaded", help="Recovery epochs after each round (0: none). "
        "--epochs is the same option.")
    recover: str = option("labels", help="labels: train on the labels; kd: distil from the unpruned model.")
    out: Path | None = option(None, help="Output checkpoint (default: next to the input, pruned-<method>-<amount>.pt).")
    run_dir: Path | None = None
    """The recovery runs' folder (runs/prune/expN, made by the caller); None: a fresh one when recovering."""
    force: bool = False
    latency: bool = option(True, help="channel: measure ONNX latency (onnxruntime, fp32) before and after.")
    latency_batches: tuple[int, ...] = (32, 1)

    def __post_init__(self) -> None:
        """Checked when built, before any model is loaded or folder made."""
        self.spec.validate()
        if self.finetune_epochs is not None and self.finetune_epochs < 0:
            raise UsageError(f"--finetune-epochs must be 0 or more, got {self.finetune_epochs}.")
        if self.recover not in RECOVER_MODES:
            raise UsageError(f"--recover must be one of {', '.join(RECOVER_MODES)}, got {self.recover!r}.")
        if self.recover == "kd" and self.finetune_epochs == 0:
            raise UsageError("--recover kd needs recovery training: --finetune-epochs must be at least 1.")
