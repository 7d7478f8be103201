"""`dlcli benchmark`: latency, throughput, size and (with data) accuracy of checkpoints and ONNX files,
measured the same way for every runtime (`dlcli.measure.timing.measure`) on the same inputs.

The artifacts and their timing are in `benchmark_artifacts`, the metrics, table and files in
`benchmark_report`."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from dlcli.console import Console
from dlcli.data.dataset import Dataset
from dlcli.measure.environment import announce_timing, available_cores, environment, fingerprint
from dlcli.measure.timing import LatencyStats, describe_method
from dlcli.workflows.benchmark_artifacts import Artifact, open_artifact, time_all
from dlcli.workflows.benchmark_config import BenchmarkConfig
from dlcli.workflows.benchmark_report import headline, show_table, write_csv, write_plot
from dlcli.workflows.result import CommandResult

__all__ = ["POOL_SIZE", "BenchmarkResult", "open_artifact", "run", "time_all"]

POOL_SIZE = 512  # real images the timed batches rotate through, when --data is given


@dataclass
class BenchmarkResult(CommandResult):
    """`dlcli benchmark --json`: command, artifact (the CSV or plot written, else null), metrics (see
    `benchmark_report.headline`), device (the devices timed, comma-joined), seconds, rows (one per
    artifact and batch size, with the machine), environment, method, csv, plot."""

    command: ClassVar[str] = "benchmark"
    rows: list[dict[str, Any]]
    environment: dict[str, Any]
    method: str
    csv: str | None
    plot: str | None

    @classmethod
    def build(cls, rows: list[dict[str, Any]], environment: dict[str, Any], method: str, csv: Path | None,
              plot: Path | None, seconds: float) -> BenchmarkResult:
        written = csv or plot
        devices = ",".join(sorted({r["device"] for r in rows})) or None
        return cls(str(written) if written else None, headline(rows), devices, seconds, rows, environment, method,
                   str(csv) if csv else None, str(plot) if plot else None)


def run(cfg: BenchmarkConfig, console: Console) -> BenchmarkResult:
    start = time.perf_counter()
    if cfg.plot is not None:
        from dlcli.plots import check_png_output

        check_png_output(Path(cfg.plot), cfg.force)  # before the timing, not after it
    threads = cfg.threads or available_cores()
    timing = cfg.timing
    method = describe_method(timing.warmup, timing.iters, timing.seconds, rounds=timing.rounds)
    artifacts = [open_artifact(Path(p), cfg.device, cfg.compile, threads) for p in cfg.artifacts]  # fail fast
    env = environment(threads)
    console.info(f"machine: {env['cpu']} ({' '.join(env['isa']) or 'no ISA flags found'}), "
                 f"gpu {env['gpu'] or 'none'}, {threads} threads")
    announce_timing(method, console)
    with _torch_threads(threads), torch.inference_mode():
        dataset = _load_data(cfg, console)
        metrics = [artifact.accuracy(dataset, console) if dataset is not None else {} for artifact in artifacts]
        pool = dataset.model_inputs(POOL_SIZE) if dataset is not None else None
        stats = time_all(artifacts, timing, pool, console)
    rows = _rows(artifacts, metrics, stats, fingerprint(env))
    show_table(rows, console)
    csv_path = write_csv(rows, cfg.csv, cfg.force) if cfg.csv else None
    plot_path = write_plot(rows, cfg.plot, cfg.force) if cfg.plot and rows else None
    return BenchmarkResult.build(rows, env, method, csv_path, plot_path, time.perf_counter() - start)


def _rows(
    artifacts: list[Artifact], metrics: list[dict[str, float]], stats: list[list[LatencyStats]],
    machine: dict[str, Any],
) -> list[dict[str, Any]]:
    """One row per artifact and batch size it ran at, grouped by artifact."""
    return [
        {"artifact": str(a.path), "runtime": a.runner.runtime, "device": a.runner.device, **s.to_dict(),
         "size_bytes": a.path.stat().st_size, "params": a.params, "accuracy": m.get("accuracy"),
         "loss": m.get("loss"), **machine}
        for a, m, per_batch in zip(artifacts, metrics, stats, strict=True) for s in per_batch
    ]


def _load_data(cfg: BenchmarkConfig, console: Console) -> Dataset | None:
    if cfg.data is None:
        return None
    from dlcli.workflows.preparation import load_data

    return load_data(cfg.data, cfg.data_dir, console, test_only=True)


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
