"""`dlcli frontier`."""

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dlcli.cli._options import DataDirOpt, DataOpt, ForceOpt, JsonOpt, QuietOpt, config_option, given_values
from dlcli.errors import EXIT_WORK
from dlcli.workflows.frontier_config import FrontierConfig
from dlcli.workflows.frontier_rules import Gates, split_list

if TYPE_CHECKING:
    from dlcli.workflows.frontier import FrontierResult


def frontier(
    model: Annotated[Path | None, typer.Argument(
        help="The parent checkpoint (.pt); a run folder: its best.pt. Default: the latest run's.")] = None,
    data: DataOpt = None,
    data_dir: DataDirOpt = None,
    variants: Annotated[str | None, config_option(FrontierConfig, "variants", "--variants")] = None,
    out: Annotated[Path | None, config_option(FrontierConfig, "out", "--out", "-o")] = None,
    recover_epochs: Annotated[float | None, config_option(FrontierConfig, "recover_epochs", "--recover-epochs")] = None,
    train_samples: Annotated[int | None, config_option(FrontierConfig, "train_samples", "--train-samples")] = None,
    seed: Annotated[int | None, config_option(FrontierConfig, "seed", "--seed")] = None,
    max_accuracy_drop: Annotated[float | None, config_option(Gates, "max_accuracy_drop", "--max-accuracy-drop")] = None,
    max_latency_ms: Annotated[float | None, config_option(Gates, "max_latency_ms", "--max-latency-ms")] = None,
    max_size_mb: Annotated[float | None, config_option(Gates, "max_size_mb", "--max-size-mb")] = None,
    pick: Annotated[bool, typer.Option(
        "--pick", help="Print the best passing artifact's path on stdout: highest accuracy, ties to the lower "
                       "latency.")] = False,
    latency_batch: Annotated[int | None, config_option(FrontierConfig, "latency_batch", "--latency-batch")] = None,
    threads: Annotated[int | None, config_option(FrontierConfig, "threads", "--threads")] = None,
    iters: Annotated[int | None, config_option(FrontierConfig, "iters", "--iters")] = None,
    rounds: Annotated[int | None, config_option(FrontierConfig, "rounds", "--rounds")] = None,
    verbose: Annotated[bool | None, config_option(FrontierConfig, "verbose", "--verbose", "-v")] = None,
    force: ForceOpt = False,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Build compressed variants of a checkpoint and measure them side by side: which one to ship?

    Each variant is made by the single command's workflow (export, quantize, prune with recovery,
    distill) into one folder, its lineage naming its parent; then all are measured the same way:
    test accuracy and drop against the parent, parameters, file size, and p50/p90 latency at batch
    1 and 32 on onnxruntime (CPU), timed in interleaved rounds so machine noise hits all alike. The
    table marks Pareto-optimal rows (*); frontier.json, frontier.csv and frontier.png are written.
    Gates mark failing variants; the exit code is 1 when none passes. A re-run reuses variants whose
    parent sha256 and options are unchanged.

    \b
    Examples:
      dlcli frontier runs/train/exp/best.pt
      dlcli frontier best.pt --variants int8,channel-50-int8 --max-accuracy-drop 0.5 --pick
      dlcli frontier best.pt --max-latency-ms 1 --max-size-mb 0.5 --json
    """
    from dlcli.cli.common import make_console
    from dlcli.runs import checkpoint_argument
    from dlcli.workflows.frontier import run

    gates = Gates(max_accuracy_drop=max_accuracy_drop, max_latency_ms=max_latency_ms, max_size_mb=max_size_mb)
    cfg = FrontierConfig(checkpoint_argument(model), gates=gates, force=force, **given_values(
        out=out, data=data, data_dir=str(data_dir) if data_dir else None,
        variants=tuple(split_list(variants)) if variants is not None else None, recover_epochs=recover_epochs,
        train_samples=train_samples, seed=seed, threads=threads, latency_batch=latency_batch, iters=iters,
        rounds=rounds, verbose=verbose))
    report(run(cfg, make_console(quiet)), json_output, pick)


def report(found: "FrontierResult", json_output: bool, pick: bool) -> None:
    """The table or JSON (or with --pick only the chosen path) on stdout; exit 1 when no variant passes."""
    from dlcli.console import emit_result

    if json_output:
        emit_result(found.to_json(), True)
    elif pick:
        if found.pick is not None:
            sys.stdout.write(f"{found.pick}\n")
    else:
        emit_result(found.to_json(), False)
    if not found.passing:
        sys.stderr.write(f"error: none of the {len(found.variants)} variants passes the gates; see {found.artifact}\n")
        raise typer.Exit(EXIT_WORK)
