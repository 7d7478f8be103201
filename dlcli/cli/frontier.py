"""`dlcli frontier`."""

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dlcli.cli._options import DataDirOpt, DataOpt, ForceOpt, JsonOpt, QuietOpt
from dlcli.errors import EXIT_WORK
from dlcli.workflows.frontier_rules import DEFAULT_VARIANTS, VARIANT_FORMS

if TYPE_CHECKING:
    from dlcli.workflows.frontier import FrontierResult


def frontier(
    model: Annotated[Path | None, typer.Argument(
        help="The parent checkpoint (.pt); default: the latest run's best checkpoint.")] = None,
    data: DataOpt = None,
    data_dir: DataDirOpt = None,
    variants: Annotated[str, typer.Option(
        "--variants", help=f"Comma list of variants: {VARIANT_FORMS}. fp32, the reference, is always built.")
    ] = ",".join(DEFAULT_VARIANTS),
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Folder for the variants and reports.", show_default="frontier/ next to the model")] = None,
    recover_epochs: Annotated[int, typer.Option(
        "--recover-epochs", help="Recovery epochs after pruning (0: none), and the distilled student's epochs.")] = 1,
    train_samples: Annotated[int | None, typer.Option(
        "--train-samples", help="Recovery and distillation on a balanced subset of N samples (quick tries).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of training, subsets and calibration.")] = 0,
    max_accuracy_drop: Annotated[float | None, typer.Option(
        "--max-accuracy-drop", help="Gate: at most X percentage points below the parent's test accuracy.")] = None,
    max_latency_ms: Annotated[float | None, typer.Option(
        "--max-latency-ms", help="Gate: p50 latency at --latency-batch of at most X ms.")] = None,
    max_size_mb: Annotated[float | None, typer.Option(
        "--max-size-mb", help="Gate: file size of at most X MB (10^6 bytes).")] = None,
    pick: Annotated[bool, typer.Option(
        "--pick", help="Print the best passing artifact's path on stdout: highest accuracy, ties to the lower "
                       "latency.")] = False,
    latency_batch: Annotated[int, typer.Option(
        "--latency-batch", help="Batch size (1 or 32) whose p50 latency the Pareto marking and --max-latency-ms "
                                "use.")] = 32,
    threads: Annotated[int | None, typer.Option(
        "--threads", help="onnxruntime threads for every measurement.", show_default="all cores")] = None,
    iters: Annotated[int, typer.Option("--iters", help="Timed calls per variant, batch size and round.")] = 100,
    rounds: Annotated[int, typer.Option(
        "--rounds", help="Timing rounds in which all variants alternate.")] = 3,
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Show each step's own output (training progress, its tables).")] = False,
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
    from dlcli.runs import latest_checkpoint
    from dlcli.workflows.frontier import FrontierConfig, run
    from dlcli.workflows.frontier_rules import Gates, split_list

    cfg = FrontierConfig(
        checkpoint=model or latest_checkpoint(), out=out, data=data, data_dir=str(data_dir) if data_dir else None,
        variants=tuple(split_list(variants)), recover_epochs=recover_epochs, train_samples=train_samples, seed=seed,
        threads=threads, latency_batch=latency_batch, iters=iters, rounds=rounds,
        gates=Gates(max_accuracy_drop, max_latency_ms, max_size_mb), force=force, verbose=verbose,
    )
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
