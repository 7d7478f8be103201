"""`dlcli finetune`."""

from pathlib import Path
from typing import Annotated, Any

import typer

from dlcli.cli._options import (
    ConfigOpt,
    DataDirOpt,
    DataOpt,
    DeviceOpt,
    ForceOpt,
    JsonOpt,
    PrintConfigOpt,
    QuietOpt,
    with_training_options,
)
from dlcli.cli.common import emit, make_console, resolve_train_config, training_flag_values


@with_training_options
def finetune(
    checkpoint: Annotated[Path | None, typer.Argument(
        help="Trained checkpoint to adapt; default: the latest run's best checkpoint.")] = None,
    data: DataOpt = None,
    data_dir: DataDirOpt = None,
    freeze: Annotated[str, typer.Option(
        "--freeze", help="none | backbone (train head + BatchNorm stats) | all-but-head (head only).")] = "none",
    unfreeze_after: Annotated[int | None, typer.Option(
        "--unfreeze-after", help="Unfreeze everything after N epochs.")] = None,
    head_lr: Annotated[float | None, typer.Option(
        "--head-lr", help="Learning rate of the head (default: --lr).")] = None,
    device: DeviceOpt = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run folder (default runs/finetune/expN).")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Run name under runs/finetune/.")] = None,
    force: ForceOpt = False,
    config: ConfigOpt = None,
    print_config: PrintConfigOpt = False,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
    training_flags: dict[str, Any] | None = None,
) -> None:
    """Adapt a trained checkpoint to a dataset (head replaced when the classes differ).

    Default learning rate: the optimizer's from-scratch default (sgd: 0.2); --head-lr sets the head's.

    \b
    Examples:
      dlcli finetune runs/train/exp/best.pt --data fashion-mnist --train-samples 1000
      dlcli finetune best.pt --data fashion-mnist --freeze all-but-head --unfreeze-after 2 --head-lr 0.1
    """
    flags = training_flag_values(training_flags, data, data_dir, device)
    cfg = resolve_train_config(config, flags, print_config)
    if cfg is None:
        return
    from dlcli.runs import latest_checkpoint, prepare_out_dir
    from dlcli.workflows.finetune import FinetuneOptions, run

    console = make_console(quiet)
    parent = checkpoint or latest_checkpoint()
    out_dir = prepare_out_dir(out, "finetune", name, force)
    options = FinetuneOptions(freeze=freeze, unfreeze_after=unfreeze_after, head_lr=head_lr)
    emit(run(parent, cfg, options, out_dir, console), json_output)
