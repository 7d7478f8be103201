"""`dlcli train`."""

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
    parse_model_args,
    with_training_options,
)
from dlcli.cli.common import emit, resolve_train_config, training_flag_values


@with_training_options
def train(
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model name (see `dlcli models`).",
                                                 show_default="cnn")] = None,
    model_arg: Annotated[list[str] | None, typer.Option(
        "--model-arg", "-a", help="Model constructor argument KEY=VALUE, e.g. -a width=2 (repeatable).")] = None,
    data: DataOpt = None,
    data_dir: DataDirOpt = None,
    device: DeviceOpt = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run folder (default runs/train/expN).")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Run name under runs/train/.")] = None,
    force: ForceOpt = False,
    config: ConfigOpt = None,
    print_config: PrintConfigOpt = False,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
    training_flags: dict[str, Any] | None = None,
) -> None:
    """Train a model. With no options: the default cnn on the embedded MNIST sample, in seconds.

    \b
    Examples:
      dlcli train
      dlcli train --model cnn --data mnist
      dlcli train -m resnet -a depth=8 --data fashion-mnist --epochs 10 --augment crop
    """
    flags = training_flag_values(training_flags, data, data_dir, device, model=model,
                                 model_args=parse_model_args(model_arg))
    cfg = resolve_train_config(config, flags, print_config)
    if cfg is None:
        return
    from dlcli.cli.common import make_console
    from dlcli.runs import prepare_out_dir
    from dlcli.workflows.train import run

    console = make_console(quiet)
    out_dir = prepare_out_dir(out, "train", name, force)
    emit(run(cfg, out_dir, console), json_output)
