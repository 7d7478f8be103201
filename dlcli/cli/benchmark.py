"""`dlcli benchmark`."""

from pathlib import Path
from typing import Annotated

import typer

from dlcli.cli._options import (
    DataDirOpt,
    DataOpt,
    DeviceOpt,
    ForceOpt,
    JsonOpt,
    MeasureThreadsOpt,
    QuietOpt,
    config_option,
    given_values,
)
from dlcli.cli.common import emit, make_console
from dlcli.workflows.benchmark_config import BenchmarkConfig


def benchmark(
    artifacts: Annotated[list[Path], typer.Argument(help="Checkpoints (.pt) and/or ONNX files to measure.")],
    batch_size: Annotated[str | None, config_option(BenchmarkConfig, "batch_sizes", "--batch-size", "-b")] = None,
    threads: MeasureThreadsOpt = None,
    warmup: Annotated[int | None, config_option(BenchmarkConfig, "warmup", "--warmup")] = None,
    iters: Annotated[int | None, config_option(BenchmarkConfig, "iters", "--iters")] = None,
    seconds: Annotated[float | None, config_option(BenchmarkConfig, "seconds", "--seconds")] = None,
    rounds: Annotated[int | None, config_option(BenchmarkConfig, "rounds", "--rounds")] = None,
    compile: Annotated[bool | None, config_option(BenchmarkConfig, "compile", "--compile")] = None,
    device: DeviceOpt = None,
    data: DataOpt = None,
    data_dir: DataDirOpt = None,
    csv: Annotated[Path | None, config_option(BenchmarkConfig, "csv", "--csv")] = None,
    plot: Annotated[Path | None, config_option(BenchmarkConfig, "plot", "--plot")] = None,
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
    from dlcli.workflows.benchmark import run
    from dlcli.workflows.benchmark_config import parse_batch_sizes

    cfg = BenchmarkConfig(tuple(artifacts), force=force, **given_values(
        batch_sizes=tuple(parse_batch_sizes(batch_size)) if batch_size is not None else None, threads=threads,
        warmup=warmup, iters=iters, seconds=seconds, device=device.value if device else None, compile=compile,
        data=data, data_dir=str(data_dir) if data_dir else None, csv=csv, plot=plot, rounds=rounds))
    emit(run(cfg, make_console(quiet)).to_json(), json_output)
