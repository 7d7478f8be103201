"""`dlcli train`."""

from pathlib import Path
from typing import Annotated

import typer

from dlcli.cli._options import TrainingInvocation, config_option, parse_model_args, with_training_options
from dlcli.config import TrainConfig


@with_training_options
def train(
    model: Annotated[str | None, config_option(TrainConfig, "model", "--model", "-m")] = None,
    model_arg: Annotated[list[str] | None, typer.Option(
        "--model-arg", "-a", help="Model constructor argument KEY=VALUE, e.g. -a width=2 (repeatable).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run folder (default runs/train/expN).")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Run name under runs/train/.")] = None,
    *,
    given: TrainingInvocation,
) -> None:
    """Train a model. With no options: the default cnn on the embedded MNIST sample, in seconds.

    \b
    Examples:
      dlcli train
      dlcli train --model cnn --data mnist
      dlcli train -m resnet -a depth=8 --data fashion-mnist --epochs 10 --augment crop
    """
    cfg = given.train_config("train", out, model=model, model_args=parse_model_args(model_arg))
    if cfg is None:
        return
    from dlcli.workflows.train import TrainRunConfig, describe, run

    if given.print_config:
        return given.show(describe(cfg))
    given.emit(run(TrainRunConfig(cfg, given.run_folder("train", out, name, cfg)), given.console()))
