"""`dlcli finetune`."""

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Literal

import typer

from dlcli.choices import FREEZE_MODES
from dlcli.cli._options import TrainingInvocation, config_option, given_values, with_training_options
from dlcli.workflows.finetune_config import FinetuneConfig


@with_training_options
def finetune(
    checkpoint: Annotated[Path | None, typer.Argument(
        help="Trained checkpoint to adapt; a run folder: its best.pt. Default: the latest run's.")] = None,
    freeze: Annotated[Literal[FREEZE_MODES] | None, config_option(  # type: ignore[valid-type]
        FinetuneConfig, "freeze", "--freeze")] = None,
    unfreeze_after: Annotated[int | None, config_option(FinetuneConfig, "unfreeze_after", "--unfreeze-after")] = None,
    head_lr: Annotated[float | None, config_option(FinetuneConfig, "head_lr", "--head-lr")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run folder (default runs/finetune/expN).")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Run name under runs/finetune/.")] = None,
    *,
    given: TrainingInvocation,
) -> None:
    """Adapt a trained checkpoint to a dataset (head replaced when the classes differ).

    Default learning rate: the optimizer's from-scratch default (sgd: 0.2); --head-lr sets the head's.

    \b
    Examples:
      dlcli finetune runs/train/exp/best.pt --data fashion-mnist --train-samples 1000
      dlcli finetune best.pt --data fashion-mnist --freeze all-but-head --unfreeze-after 2 --head-lr 0.1
    """
    from dlcli.runs import checkpoint_argument

    train = given.train_config("finetune", out)
    if train is None:
        return
    from dlcli.workflows.finetune import describe, run

    config = FinetuneConfig(checkpoint_argument(checkpoint), train, **given_values(
        freeze=freeze, unfreeze_after=unfreeze_after, head_lr=head_lr))  # validates
    if given.print_config:
        return given.show(describe(config))
    given.emit(run(replace(config, out_dir=given.run_folder("finetune", out, name, train)), given.console()))
