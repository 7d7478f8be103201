"""`dlcli prune`."""

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from dlcli.choices import PRUNE_METHODS, RECOVER_MODES
from dlcli.cli._options import TrainingInvocation, config_option, given_values, with_training_options
from dlcli.cli.common import remove_if_unused
from dlcli.compress.prune_spec import PruneSpec
from dlcli.errors import UsageError
from dlcli.workflows.prune_config import RECOVERY_BATCH_SIZE, PruneConfig


@with_training_options
def prune(
    checkpoint: Annotated[Path | None, typer.Argument(
        help="Checkpoint to prune; a run folder: its best.pt. Default: the latest run's.")] = None,
    amount: Annotated[float, config_option(PruneSpec, "amount", "--amount")] = ...,  # type: ignore[assignment]
    method: Annotated[Literal[PRUNE_METHODS], config_option(  # type: ignore[valid-type]
        PruneSpec, "method", "--method")] = ...,  # type: ignore[assignment]
    steps: Annotated[int | None, config_option(PruneSpec, "steps", "--steps")] = None,
    round_to: Annotated[int | None, config_option(PruneSpec, "round_to", "--round-to")] = None,
    ignore: Annotated[list[str] | None, config_option(PruneSpec, "ignore", "--ignore")] = None,
    finetune_epochs: Annotated[float | None, config_option(PruneConfig, "finetune_epochs", "--finetune-epochs")] = None,
    recover: Annotated[Literal[RECOVER_MODES] | None, config_option(  # type: ignore[valid-type]
        PruneConfig, "recover", "--recover")] = None,
    out: Annotated[Path | None, config_option(PruneConfig, "out", "--out", "-o")] = None,
    latency: Annotated[bool | None, config_option(PruneConfig, "latency", "--latency/--no-latency")] = None,
    *,
    given: TrainingInvocation,
) -> None:
    """Prune a checkpoint: zero weights (unstructured) or remove channels (channel), then recover accuracy
    by training on the checkpoint's dataset (default) with the usual training options.

    Recovery defaults: 1 epoch per round, batch size 64 and half the optimizer's from-scratch learning
    rate (sgd with onecycle: 0.1); every training option can override them.

    Reports sparsity, parameters, MACs, file size, test accuracy before, right after pruning and after
    recovery, and for channel pruning the measured ONNX latency (unstructured zeros are not faster).

    \b
    Examples:
      dlcli prune runs/train/exp/best.pt --method channel --amount 0.5
      dlcli prune best.pt --method global-unstructured --amount 0.9 --finetune-epochs 2
      dlcli prune best.pt --method channel --amount 0.6 --steps 3 --recover kd --round-to 8 --json
    """
    finetune_epochs = recovery_epochs(given, finetune_epochs)
    from dlcli.workflows.prune import describe

    train = given.train_config("prune", command_defaults={"batch_size": RECOVERY_BATCH_SIZE},
                               trains=finetune_epochs != 0)
    if train is None:
        return
    from dlcli.runs import checkpoint_argument

    spec = PruneSpec(method, amount, **given_values(steps=steps, round_to=round_to, ignore=ignore))
    config = PruneConfig(checkpoint_argument(checkpoint), spec, train, force=given.force, **given_values(
        finetune_epochs=finetune_epochs, recover=recover, out=out, latency=latency))  # validates, before any folder
    if given.print_config:
        return given.show(describe(config))
    given.emit(run_prune(config, given))


def recovery_epochs(given: TrainingInvocation, finetune_epochs: float | None) -> float | None:
    """--finetune-epochs, or --epochs (the same option for prune); refuses --resume."""
    alias = given.flags.pop("epochs", None)
    if alias is not None:
        if finetune_epochs is not None and finetune_epochs != alias:
            raise UsageError("give either --finetune-epochs or --epochs, not both.")
        finetune_epochs = alias
    if given.resume:
        raise UsageError("prune does not resume (a round is short): run it again; --resume is for train, "
                         "finetune and distill.")
    return finetune_epochs


def run_prune(config: Any, given: TrainingInvocation) -> Any:
    """Make the recovery runs' folder (runs/prune/expN, removed again when it stays empty because the
    data turned out to be unavailable) and run the workflow."""
    from dlcli.distributed import setup
    from dlcli.workflows.prune import run

    setup(config.train.device)
    run_dir = given.run_folder("prune", None, None, config.train) if config.finetune_epochs != 0 else None
    result = run(replace(config, run_dir=run_dir), given.console())
    remove_if_unused(run_dir, result.run_dir)
    return result
