"""`dlcli finetune`."""

from pathlib import Path
from typing import Annotated

import typer

from dlcli.cli._options import TrainingInvocation, with_training_options


@with_training_options
def finetune(
    checkpoint: Annotated[Path | None, typer.Argument(
        help="Trained checkpoint to adapt; default: the latest run's best checkpoint.")] = None,
    freeze: Annotated[str, typer.Option(
        "--freeze", help="none | backbone (train head + BatchNorm stats) | all-but-head (head only).")] = "none",
    unfreeze_after: Annotated[int | None, typer.Option(
        "--unfreeze-after", help="Unfreeze everything after N epochs.")] = None,
    head_lr: Annotated[float | None, typer.Option(
        "--head-lr", help="Learning rate of the head (default: --lr).")] = None,
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
    from dlcli.runs import latest_checkpoint
    from dlcli.workflows.finetune import FinetuneOptions, run

    options = FinetuneOptions(freeze=freeze, unfreeze_after=unfreeze_after, head_lr=head_lr)  # validates
    parent = checkpoint or latest_checkpoint()
    setup = given.run_setup("finetune", out, name)
    if setup is None:
        return
    cfg, out_dir = setup
    given.emit(run(parent, cfg, options, out_dir, given.console()))
