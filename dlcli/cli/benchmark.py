"""`dlcli benchmark`."""

from pathlib import Path
from typing import Annotated

import typer

from dlcli.cli._options import DataDirOpt, DataOpt, DeviceOpt, ForceOpt, JsonOpt, MeasureThreadsOpt, QuietOpt
from dlcli.cli.common import emit, make_console


def benchmark(
    artifacts: Annotated[list[Path], typer.Argument(help="Checkpoints (.pt) and/or ONNX files to measure.")],
    batch_size: Annotated[str, typer.Option("--batch-size", "-b", help="Comma list of batch sizes.")] = "1,32",
    threads: MeasureThreadsOpt = None,
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed calls before timing.")] = 10,
    iters: Annotated[int | None, typer.Option(
        "--iters", help="Timed calls per batch size and round.", show_default="100 unless --seconds")] = None,
    seconds: Annotated[float | None, typer.Option(
        "--seconds", help="Time budget per batch size and round (with --iters: whichever ends first).")] = None,
    rounds: Annotated[int | None, typer.Option(
        "--rounds", help="Repeat the timing in N rounds that alternate the artifacts, so a noisy spell on the "
        "machine hits all of them alike (--iters/--seconds apply to each round).",
        show_default="3 with several artifacts, else 1")] = None,
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile checkpoints before timing.")] = False,
    device: DeviceOpt = None,
    data: DataOpt = None,
    data_dir: DataDirOpt = None,
    csv: Annotated[Path | None, typer.Option("--csv", help="Also write the rows to this CSV file.")] = None,
    plot: Annotated[Path | None, typer.Option(
        "--plot", help="Also draw accuracy (or throughput) against latency into this PNG file.")] = None,
    force: ForceOpt = False,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Measure latency (p50/p90/p99), throughput, size, parameters and, with --data, accuracy.

    Checkpoints run in PyTorch (eager, or --compile), .onnx files in onnxruntime (CUDA when
    available and --device allows). Warm-up calls are discarded, every call is timed on its own,
    inputs rotate among several batches and several artifacts are timed in alternating rounds; rows
    record the machine they were measured on.

    \b
    Examples:
      dlcli benchmark runs/train/exp/best.pt runs/train/exp/best.onnx
      dlcli benchmark model.onnx --batch-size 1,8,64 --threads 1 --data mnist --csv bench.csv
      dlcli benchmark best.pt --compile --seconds 5 --json
    """
    from dlcli.workflows.benchmark import BenchmarkConfig, parse_batch_sizes, run

    cfg = BenchmarkConfig(
        artifacts=tuple(artifacts), batch_sizes=tuple(parse_batch_sizes(batch_size)), threads=threads, warmup=warmup,
        iters=iters, seconds=seconds, device=device.value if device else "auto", compile=compile, data=data,
        data_dir=str(data_dir) if data_dir else None, csv=csv, plot=plot, force=force,
        rounds=rounds,
    )
    emit(run(cfg, make_console(quiet)).to_json(), json_output)
