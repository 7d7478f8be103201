"""`DistillConfig`, kept free of torch: `dlcli distill`'s own options take their help text and shown
default from these field declarations, and `dlcli --help` must not import torch. Re-exported by
dlcli.workflows.distill, whose `run` takes it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlcli.config import TrainConfig, flag_name, option
from dlcli.validation import validate_fields

DISTILL_SETTINGS = ("temperature", "alpha", "feature_loss")
"""What makes a distillation run the one it is, beyond its TrainConfig: a resume keeps them."""


@dataclass(frozen=True)
class DistillConfig:
    """Distilling a teacher checkpoint into a student: both, the loss's settings, the training run's
    config and where the run goes."""

    teacher: Path = option(help="Teacher checkpoint (.pt); its classes must be the data's (default data: its dataset).")
    student: str = option("cnn", help="Student: a model name (sized with -a) or a student checkpoint to continue from.")
    student_args: dict[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    temperature: float = option(4.0, gt=0, help="Softening temperature T.")
    alpha: float = option(0.9, ge=0, le=1, help="Weight of the soft (teacher) term; 1-alpha on labels.")
    feature_loss: float = option(0.0, ge=0, show="0",
                                 help="Weight of an MSE hint on the features before the head (needs equal widths).")
    cache_teacher: bool = option(True, help="Compute teacher logits once (only without --augment).")
    baseline: bool = option(False, help="Also train the same student alone with the same budget, and compare.")
    out_dir: Path | None = None
    """The run folder, made by the caller; None: a fresh runs/distill/expN."""

    def __post_init__(self) -> None:
        """Checked when built, before the command makes its run folder."""
        from dlcli.models import MODELS, model_args

        validate_fields(self, flag_name)
        if self.student in MODELS:
            model_args(self.student, self.student_args)
