"""`dlcli prune`."""

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from dlcli.choices import PRUNE_METHODS, RECOVER_MODES
from dlcli.cli._options import TrainingInvocation, with_training_options
from dlcli.cli.common import remove_if_unused
from dlcli.errors import UsageError


@with_training_options
def prune(
    checkpoint: Annotated[Path | None, typer.Argument(
        help="Checkpoint to prune; default: the latest run's best checkpoint.")] = None,
    amount: Annotated[float, typer.Option(
        "--amount", help="Fraction to remove, in (0, 1): of weights (unstructured) or of each layer's channels "
                         "(channel).")] = ...,  # type: ignore[assignment]
    method: Annotated[Literal[PRUNE_METHODS], typer.Option(  # type: ignore[valid-type]
        "--method", help="l1-unstructured (per layer), global-unstructured (one threshold) or channel "
                         "(removes filters/neurons: a smaller, faster dense model).")] = ...,  # type: ignore[assignment]
    steps: Annotated[int, typer.Option(
        "--steps", help="Reach the amount in K equal rounds, with recovery training after each.")] = 1,
    round_to: Annotated[int | None, typer.Option(
        "--round-to", help="channel: each layer keeps the multiple of N channels nearest its target (1: no "
        "rounding). Other widths can make onnxruntime's CPU kernels slower than the unpruned model's.",
        show_default="4")] = None,
    ignore: Annotated[list[str] | None, typer.Option(
        "--ignore", help="Module name never to prune, e.g. body.0 (repeatable). The classifier head's "
                         "outputs are never pruned.")] = None,
    finetune_epochs: Annotated[int | None, typer.Option(
        "--finetune-epochs", help="Recovery epochs after each round (0: none). Default 1 when the data can "
                                  "be loaded. --epochs is the same option.")] = None,
    recover: Annotated[Literal[RECOVER_MODES], typer.Option(  # type: ignore[valid-type]
        "--recover", help="labels: train on the labels; kd: distil from the unpruned model.")] = "labels",
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Output checkpoint (default: next to the input, pruned-<method>-<amount>.pt).")] = None,
    latency: Annotated[bool, typer.Option(
        "--latency/--no-latency", help="channel: measure ONNX latency (onnxruntime, fp32) before and after.")] = True,
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
    from dlcli.workflows.prune import RECOVERY_BATCH_SIZE, PruneConfig, describe

    train = given.train_config("prune", command_defaults={"batch_size": RECOVERY_BATCH_SIZE})
    if train is None:
        return
    from dlcli.compress.pruning import PruneSpec
    from dlcli.runs import latest_checkpoint

    spec = PruneSpec(method, amount, steps, round_to, list(ignore or []))
    config = PruneConfig(checkpoint or latest_checkpoint(), spec, train, finetune_epochs, recover, out,
                         force=given.force, latency=latency)  # validates, before any folder is made
    if given.print_config:
        return given.show(describe(config))
    given.emit(run_prune(config, given))


def recovery_epochs(given: TrainingInvocation, finetune_epochs: int | None) -> int | None:
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
