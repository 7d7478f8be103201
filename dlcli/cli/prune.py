"""`dlcli prune`."""

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from dlcli.cli._options import TrainingInvocation, with_training_options
from dlcli.errors import UsageError


class Method(str, Enum):
    l1_unstructured = "l1-unstructured"
    global_unstructured = "global-unstructured"
    channel = "channel"


class Recover(str, Enum):
    labels = "labels"
    kd = "kd"


@with_training_options
def prune(
    checkpoint: Annotated[Path | None, typer.Argument(
        help="Checkpoint to prune; default: the latest run's best checkpoint.")] = None,
    amount: Annotated[float, typer.Option(
        "--amount", help="Fraction to remove, in (0, 1): of weights (unstructured) or of each layer's channels "
                         "(channel).")] = ...,  # type: ignore[assignment]
    method: Annotated[Method, typer.Option(
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
    recover: Annotated[Recover, typer.Option(
        "--recover", help="labels: train on the labels; kd: distil from the unpruned model.")] = Recover.labels,
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
    alias = given.flags.pop("epochs", None)
    if alias is not None:
        if finetune_epochs is not None and finetune_epochs != alias:
            raise UsageError("give either --finetune-epochs or --epochs, not both.")
        finetune_epochs = alias
    from dlcli.workflows.prune import RECOVERY_BATCH_SIZE, PruneOptions, run

    if given.resume:
        raise UsageError("prune does not resume (a round is short): run it again; --resume is for train, "
                         "finetune and distill.")
    if given.nproc_per_node is not None:
        from dlcli.cli._options import ARGV
        from dlcli.cli.common import launch_distributed

        launch_distributed(given.nproc_per_node, ARGV)
        return
    cfg = given.train_config({"batch_size": RECOVERY_BATCH_SIZE})
    if cfg is None:
        return
    from dlcli.distributed import setup

    setup(cfg.device)
    from dlcli.compress.pruning import PruneSpec
    from dlcli.runs import latest_checkpoint

    spec = PruneSpec(method.value, amount, steps, round_to, list(ignore or []))
    options = PruneOptions(spec, finetune_epochs, recover.value, out, given.force, latency, threads=cfg.threads)
    given.emit(run(checkpoint or latest_checkpoint(), options, cfg, given.console()))
